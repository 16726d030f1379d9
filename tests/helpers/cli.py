"""Running ``caffe-port`` in the test process and reading what it printed."""
from caffe_port.cli import main


def run(capsys, *argv):
    """(exit status, stdout, stderr) of ``caffe-port *argv``."""
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def error_line(err):
    """The one error line (notes such as the assumed pre-processing may precede it)."""
    errors = [line for line in err.splitlines() if line.startswith("caffe-port: error:")]
    assert len(errors) == 1, err
    return errors[0]

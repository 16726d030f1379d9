"""A Ray actor that dies: the batch engine's Explainer, whose process exits in the middle of its
first batch unless the marker file says an earlier process of it already died."""
import os

from caffe_port.batch.ray_engine import Explainer


class DyingExplainer(Explainer):
    marker = None            # set on a subclass: the file whose existence means "died already"

    def __call__(self, batch):
        if not os.path.exists(self.marker):
            with open(self.marker, "w") as f:
                f.write(str(os.getpid()))
            os._exit(1)                  # as a kill -9 or a lost node: no cleanup, no exception
        return super().__call__(batch)


def dying_explainer(marker):
    """A DyingExplainer subclass bound to ``marker`` (the class travels to the actors by name and
    value, the marker with it)."""
    return type("DyingExplainerAt", (DyingExplainer,), {"marker": marker, "__module__": __name__})

"""The version of zmq_green (``zmq_green.__version__`` is pyzmq's, as in ``zmq``)."""

__version__ = "0.1.0"

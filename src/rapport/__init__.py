"""rapport: aggregate engagement and sentiment signals for video calls, consent first."""

__version__ = "0.1.0"

NOTICE = "Estimates of outward expression, not of anyone's inner state."

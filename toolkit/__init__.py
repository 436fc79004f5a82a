"""digitkit's workstation side: data, training, verification, reports and the command line."""
__version__ = "0.1.0"

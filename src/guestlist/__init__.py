"""guestlist: a self-hostable customer data platform for age-restricted retail."""

__version__ = "0.1.0"

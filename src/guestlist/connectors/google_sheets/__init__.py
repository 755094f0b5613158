"""Google Sheets: import a shop's old customer list from a sheet range (values.get with
a service account), mapped header by header to traits and consent. See README.md."""

from guestlist.connectors.google_sheets.connector import GoogleSheetsConnector

__all__ = ["GoogleSheetsConnector"]

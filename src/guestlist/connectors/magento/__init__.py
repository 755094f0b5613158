"""Magento 2 / Adobe Commerce: customers and orders pulled over REST (searchCriteria).

See docs/connectors/magento.md.
"""

from guestlist.connectors.magento.connector import MagentoConnector

__all__ = ["MagentoConnector"]

"""Facebook Lead Ads: the webhook handshake, signed leadgen deliveries, and the job
that reads each lead (answers, consent checkboxes) from the Graph API.
See README.md and docs/connectors/facebook_lead_ads.md."""

from guestlist.connectors.facebook_lead_ads import jobs
from guestlist.connectors.facebook_lead_ads.connector import FacebookLeadAdsConnector

__all__ = ["FacebookLeadAdsConnector", "jobs"]

"""Privacy: erasure, suppression after erasure, access (export), the compliance report.

Rules P-1 to P-3a and P-6 of ../shared/compliance.md; see docs/privacy.md. The
modules are imported by name (`guestlist.privacy.erase`, …): the pipeline imports
`suppression`, and `erase` imports the pipeline, so this package imports nothing.
"""

"""Scheduled maintenance (issue 4): windows announced in advance, checked with the what-if analysis."""

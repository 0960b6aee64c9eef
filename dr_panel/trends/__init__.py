"""Anonymised trend summaries (issue 7): pre-aggregated counts kept consistent with the cases,
population denominators, rates with confidence intervals, disclosure control, charts, exports
and the record-level extract."""

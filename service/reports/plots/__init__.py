"""The report's figures, one module per section of the result: each function takes a part of the
result document and returns a :class:`~service.reports.figures.Plot` (inline SVG and a caption),
or None when that part holds nothing to draw."""

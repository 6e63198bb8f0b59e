"""The static leaderboard site of ``python -m benchmark site``: HTML pages that open from ``file://`` with no server
and no external resource (one local stylesheet and script), built from the committed results: the front page's sortable
leaderboard tables, one page per method (model cards, certified-accuracy curves as inline SVG, paired comparisons),
and the attack, audit, speed and certificate-design pages rendered from the markdown :mod:`benchmark.report` writes.

Every number comes from :mod:`benchmark.report` (rows, cells, comparisons, pages) given a suite snapshot passed in;
this package only lays them out, so the site and the markdown leaderboards cannot disagree. It may import
:mod:`benchmark.report`, :mod:`benchmark.config.snapshot` and :mod:`benchmark.files`; only :mod:`benchmark.cli`
imports it. Output is deterministic (no timestamps, no absolute paths), so a rebuild can be diffed.
"""

"""The quality report (docs/quality.md), one module per section; scripts/quality_report.py runs it.

report.py assembles the sections in this order: detection.py (1. face detection by size, head
turn, layout and dim light), agreement.py (2. offline vs transformer expression heads),
speech.py (3. VAD boundaries and word error rate, on speech_corpora.py scored by
speech_scoring.py), stability.py (4. the smoothed expression on still_scenes.py), latency.py
(5. per head) and published.py (6. what cannot be measured here). run.py holds the run's shared
state, markdown.py and stats.py the formatting and statistics every section uses, models.py what
is installed.
"""

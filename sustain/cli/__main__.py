from __future__ import annotations

from sustain.cli import main

main()

from __future__ import annotations

from sustain.cli import console_main

console_main()

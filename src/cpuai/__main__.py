"""``python -m cpuai``: the same CLI as the ``cpuai`` console script."""

from cpuai.cli.app import console_main

console_main()

"""Every documented command is registered (a CLI edit must not drop one silently)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from marketpulse.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--help"],
        ["replay", "--help"],
        ["persist", "--help"],
        ["ingest-topic", "--help"],
        ["services", "status", "--help"],
        ["evaluate", "sentiment", "--help"],
        ["evaluate", "price", "--help"],
        ["train", "price", "--help"],
        ["train", "sentiment", "--help"],
        ["serve", "--help"],
        ["dashboard", "--help"],
        ["keys", "list", "--help"],
        *[
            ["bench", name, "--help"]
            for name in ("ingest", "bus", "indicators", "bars", "engine", "sentiment", "predict", "api")
        ],
        ["version"],
    ],
)
def test_command_is_registered(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output

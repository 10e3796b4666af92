"""The training benchmark's options (ffnlib.bench.train_options): the device's defaults, the command
that reruns a measurement, and the errors of bad options."""
import argparse

import pytest

from ffnlib.bench import train_options
from ffnlib.bench.__main__ import main


def parse(*argv):
    parser = argparse.ArgumentParser()
    train_options.add_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


def test_cli_defaults_and_errors(tmp_path):
    args = parse("--device", "cpu", "--no-e2e")
    device, chosen = train_options.resolve(args)
    assert device.type == "cpu" and args.arch == "small" and args.batch_size == 8
    assert any(c.startswith("frame-size") for c in chosen)
    assert args.models == [("vanilla", "small"), ("ffn", "small")]
    assert "--arch small" in train_options.resolved_command(args) and "--no-e2e" in train_options.resolved_command(args)
    with pytest.raises(SystemExit, match="tsm_<arch>"):
        train_options.resolve(parse("--device", "cpu", "--model", "tsm_huge"))
    with pytest.raises(SystemExit, match="--precision"):
        train_options.resolve(parse("--device", "cpu", "--precision", "fp8"))
    with pytest.raises(SystemExit):  # the dispatcher knows the benchmark and parses its options
        main(["train", "--precision"])


def test_every_setting_of_the_sweep_is_measured():
    args = parse("--device", "cpu", "--no-e2e", "--precision", "fp32,bf16", "--channels-last", "both",
                 "--compile", "on")
    train_options.resolve(args)
    assert [s.label for s in args.settings] == ["fp32 compile", "fp32 channels_last compile", "bf16 compile",
                                                "bf16 channels_last compile"]
    assert "--precision fp32,bf16 --channels-last both --compile on" in train_options.resolved_command(args)

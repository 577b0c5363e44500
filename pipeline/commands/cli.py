"""The command line, and only that: parsing arguments, printing, exit status. Each command turns flags into one
settings object (RunConfig, whose fields declare the flags) or a few arguments, and calls one function of the
shared core (pipeline.runs), which the Python API (pipeline.api) calls too.

Exit status: 0 done; 2 bad input or usage (one `error: ...` line on stderr); 1 only for a bug.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import typing
from collections.abc import Callable
from typing import Any, NoReturn

from pipeline.base.config import RunConfig, flag_of, option_types, validate
from pipeline.base.errors import UserError

USAGE_ERROR = 2
RUNNERS = ("local", "beam")  # extract only: this machine, or an Apache Beam pipeline (pipeline.runs.beam_extract)


class _Parser(argparse.ArgumentParser):
    """argparse prints usage plus a message over several lines; our contract is one `error:` line."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {message}; see `python -m pipeline {self.prog.split()[-1]} --help`\n")
        sys.exit(USAGE_ERROR)


def _comma_separated_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected widths such as 50,30,30, got {text!r}") from None


def _whole_number_or_auto(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or auto, got {text!r}") from None


def _value_type(annotation: Any) -> Any:
    """The type a flag's text converts to: `int | None` is int, `tuple[int, ...]` is a comma list of ints."""
    arguments = [argument for argument in typing.get_args(annotation) if argument is not type(None)]
    if typing.get_origin(annotation) is tuple:
        return _comma_separated_ints
    if len(arguments) == 1:  # X | None
        return _value_type(arguments[0])
    if annotation in (int, float, str):
        return annotation
    raise TypeError(f"RunConfig has a field of type {annotation!r} that the command line cannot parse yet")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """One flag per RunConfig field, typed by the field's annotation, with the field's own help text."""
    annotations = option_types()
    for field in dataclasses.fields(RunConfig):
        flag = flag_of(field.name)
        help_text = field.metadata["help"]
        annotation = annotations[field.name]
        if annotation is bool:
            parser.add_argument(flag, action="store_true", help=help_text)
        elif field.metadata["auto"]:
            parser.add_argument(flag, type=_whole_number_or_auto, default=field.default, metavar="N|auto", help=help_text)
        elif field.metadata["choices"] is not None:
            parser.add_argument(flag, choices=field.metadata["choices"], default=field.default, help=help_text)
        else:
            value_type = _value_type(annotation)
            metavar = "N,N,..." if value_type is _comma_separated_ints else field.name.split("_")[-1].upper()
            parser.add_argument(flag, type=value_type, default=field.default, metavar=metavar, help=help_text)


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    parser.add_argument("--verbose", action="store_true", help="debug logging, and Keras's per-epoch lines in place of the heads' progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m pipeline", description="Frozen TF-Hub BERT features + a small Keras head.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    run = commands.add_parser("run", help="extract features (cached), train the head, evaluate, write a run folder")
    _add_run_options(run)
    _add_output_options(run)
    sweep = commands.add_parser("sweep", help="train many heads on the cached features; keep the best by validation AUROC")
    _add_run_options(sweep)
    _add_output_options(sweep)
    extract = commands.add_parser("extract", help="fill the feature cache and stop",
                                  usage="python -m pipeline extract [options] [--runner beam [-- BEAM_OPTION ...]]")
    _add_run_options(extract)
    extract.add_argument("--runner", choices=RUNNERS, default="local",
                         help="local: on this machine; beam: an Apache Beam pipeline, Beam's own options after --")
    _add_output_options(extract)

    convert = commands.add_parser("convert", help="Hugging Face BERT checkpoint -> TF-Hub SavedModel")
    convert.add_argument("--checkpoint", required=True, help="folder with config.json, model.safetensors, vocab.txt")
    convert.add_argument("--output", required=True, help="new folder for the SavedModel (must not exist)")
    _add_output_options(convert)

    export = commands.add_parser("export", help="a finished run as one SavedModel: raw strings in, probabilities out")
    export.add_argument("--run", required=True, help="a finished run folder (it holds metrics.json)")
    export.add_argument("--output", required=True, help="new folder for the SavedModel (must not exist)")
    export.add_argument("--encoder-only", action="store_true",
                        help="export a fine-tuned run's encoder alone, as a TF-Hub SavedModel for --encoder")
    _add_output_options(export)

    predict = commands.add_parser("predict", help="label texts with an exported model or a run folder")
    predict.add_argument("texts", nargs="*", metavar="TEXT", help="texts to label (or use --input)")
    predict.add_argument("--model", required=True, help="a folder written by `export`, or a run folder")
    predict.add_argument("--input", metavar="FILE", help="table of texts (CSV, TSV, JSONL or Parquet)")
    predict.add_argument("--text-column", default="text", metavar="NAME", help="column of --input holding the texts")
    predict.add_argument("--output", metavar="FILE", help="write a table (.csv, .tsv or .jsonl) instead of printing")
    _add_output_options(predict)
    return parser


def _config_from(arguments: argparse.Namespace) -> RunConfig:
    names = {field.name for field in dataclasses.fields(RunConfig)}
    config = RunConfig(**{name: value for name, value in vars(arguments).items() if name in names})
    validate(config)  # a bad option fails here, before pandas and TensorFlow are even imported
    return config


def _setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not verbose:  # TensorFlow's and absl's INFO lines are about TensorFlow, not about the user's run
        for name in ("tensorflow", "absl"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _command_run(arguments: argparse.Namespace) -> None:
    from pipeline.runs.run import run
    from pipeline.runs.summary import summary_table

    result = run(_config_from(arguments), show_progress=not arguments.quiet)
    print(summary_table(result))


def _command_sweep(arguments: argparse.Namespace) -> None:
    from pipeline.runs.summary import summary_table
    from pipeline.runs.sweep import summary_lines, sweep

    result = sweep(_config_from(arguments), show_progress=not arguments.quiet)
    print(summary_lines(result))
    print(summary_table(result))


def _command_extract(arguments: argparse.Namespace) -> None:
    from pipeline.runs.prepare import extract, prepare

    config = _config_from(arguments)
    if config.fine_tune:
        raise UserError("--fine-tune trains the encoder, and `extract` only fills the frozen feature cache; "
                        "drop --fine-tune, or use `python -m pipeline run --fine-tune`")
    if arguments.runner == "beam":
        _extract_with_beam(config, arguments)
        return
    if arguments.beam_options:
        raise UserError(f"options after -- ({' '.join(arguments.beam_options)}) are Beam's; add --runner beam, or drop them")
    result = extract(prepare(config), show_progress=not arguments.quiet)
    _print_extraction(result, "", str(result.entry_dir))


def _extract_with_beam(config: RunConfig, arguments: argparse.Namespace) -> None:
    from pipeline.runs.beam_extract import extract_with_beam

    result = extract_with_beam(config, arguments.beam_options, verbose=arguments.verbose)
    _print_extraction(result, " (Beam)", result.entry_path)


def _print_extraction(result: Any, runner: str, entry: str) -> None:
    """What `extract` prints, for either runner: the long-text line, then the features and the cache entry."""
    from pipeline.features.long_texts import summary_line

    if result.long_texts:  # a Beam entry from before the figures were recorded has none
        print(summary_line(result.long_texts))
    state = "hit" if result.cache_hit else "miss"
    if result.reused_shards:
        state += f", reused {result.reused_shards} verified shard(s) from an earlier attempt"
    print(f"Features: {result.texts} texts in {result.seconds:.1f} s ({result.texts_per_second:.0f} texts/s), "
          f"cache {state}{runner}: {entry}")


def _command_convert(arguments: argparse.Namespace) -> None:
    from pipeline.base.devices import start_tensorflow

    start_tensorflow(verbose=arguments.verbose)
    from pipeline.encoders.convert import convert_checkpoint

    output = convert_checkpoint(arguments.checkpoint, arguments.output)
    print(f"Converted {arguments.checkpoint} -> {output}")


def _command_export(arguments: argparse.Namespace) -> None:
    from pipeline.runs.export import export_run, export_tuned_encoder  # start TensorFlow once the run folder is known to be good

    if arguments.encoder_only:
        output = export_tuned_encoder(arguments.run, arguments.output, verbose=arguments.verbose)
        print(f"Exported the fine-tuned encoder of {arguments.run} -> {output} (use it with --encoder {output})")
        return
    output = export_run(arguments.run, arguments.output, verbose=arguments.verbose)
    print(f"Exported {arguments.run} -> {output}")


def _command_predict(arguments: argparse.Namespace) -> None:
    from pipeline.runs.predict import predict_command  # starts TensorFlow once the input is known to be good

    print(predict_command(arguments.model, arguments.texts, input_path=arguments.input, output_path=arguments.output,
                          text_column=arguments.text_column, show_progress=not arguments.quiet,
                          verbose=arguments.verbose))


COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    "run": _command_run, "sweep": _command_sweep, "extract": _command_extract, "convert": _command_convert,
    "export": _command_export, "predict": _command_predict,
}


def _split_beam_options(argv: list[str]) -> tuple[list[str], list[str]]:
    """`extract ... -- BEAM_OPTION ...`: everything after the first `--` of an extract command goes to Beam
    untouched (other commands keep `--` for argparse: `predict -- -text-with-a-dash`)."""
    if argv[:1] == ["extract"] and "--" in argv:
        separator = argv.index("--")
        return argv[:separator], argv[separator + 1 :]
    return argv, []


def main(argv: list[str] | None = None) -> int:
    own_arguments, beam_options = _split_beam_options(list(sys.argv[1:] if argv is None else argv))
    arguments, unknown = build_parser().parse_known_args(own_arguments)
    if unknown:  # argparse reports these from the top-level parser, whose hint would name no command
        _Parser(prog=f"python -m pipeline {arguments.command}").error(f"unrecognized arguments: {' '.join(unknown)}")
    arguments.beam_options = beam_options
    _setup_logging(arguments.verbose, arguments.quiet)
    try:
        COMMANDS[arguments.command](arguments)
    except UserError as error:
        sys.stderr.write(f"error: {error}\n")
        return USAGE_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; finished cache shards are kept and the next run resumes from them\n")
        return 130
    return 0

"""``python -m grader``: its subcommands and their options, each option and default defined once."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grader
from grader import finalize, k8s, merge, release, run, sandbox, settings
from labutils import config

COMMANDS = ("run", "k8s", "merge", "release", "finalize")


def _profile(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", choices=sorted(config.PROFILES),
                        help="passed to every notebook as its `profile` parameter (default: $LAB5_PROFILE, else "
                             "full on a machine with a GPU and laptop without one)")


def _submissions(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--submissions", type=Path, metavar="DIR", required=required,
                        help="the class: every folder of DIR is one student's copy of the lab")


def _out(parser: argparse.ArgumentParser, what: str, required: bool = False) -> None:
    parser.add_argument("--out", type=Path, required=required, help=what)


def _run_options(parser: argparse.ArgumentParser) -> None:
    _profile(parser)
    _submissions(parser, required=False)
    _out(parser, f"where executed notebooks and the report go (default: {config.ROOT / settings.GRADED} for "
                 f"one repository, DIR-graded beside --submissions DIR)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="another parameter for every notebook (VALUE read as a number, true/false/None or "
                             "JSON when it parses as one, else as a string)")
    parser.add_argument("--timeout", type=float, help="seconds per notebook, the whole notebook (default: "
                        + ", ".join(f"{k} {v:g}" for k, v in settings.TIMEOUT_S.items()) + ")")
    parser.add_argument("--jobs", type=int, help=f"students graded at once (default: {settings.JOB_CPUS} CPU "
                        f"cores and the profile's memory ({settings.JOB_MEMORY_GB}) free for each)")
    parser.add_argument("--sandbox", choices=sandbox.MODES, default="auto",
                        help="auto (default): bubblewrap where it works, else run unisolated and say so; "
                             "bwrap: fail unless bubblewrap works; none: no isolation")
    _limit_options(parser)


def _per_profile(table: dict) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in table.items())


def _limit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--memory-gb", type=float, help="memory each student's notebooks may use, a control group "
                        f"per student (default: {_per_profile(settings.JOB_MEMORY_GB)})")
    parser.add_argument("--max-processes", type=int, help="processes and threads each student's notebooks may run "
                        f"at once (default: {_per_profile(settings.MAX_PROCESSES)})")
    parser.add_argument("--disk-gb", type=float, help="size of each student's work folder, a tmpfs held in memory "
                        f"(default: {_per_profile(settings.DISK_GB)})")
    parser.add_argument("--require-limits", action="store_true",
                        help="refuse to grade where a memory, process or disk limit cannot be applied (no writable "
                             "control groups, not root)")
    parser.add_argument("--no-limits", action="store_true",
                        help="grade without memory, process and disk limits (the sandbox stays; the report says "
                             "NOT LIMITED): to see what a submission would take")
    parser.add_argument("--pod-limits", action="store_true",
                        help="running in a Kubernetes pod (python -m grader k8s writes this): the pod's own resource "
                             "limits are the limits")


def _k8s_options(parser: argparse.ArgumentParser) -> None:
    _profile(parser)
    _submissions(parser, required=True)
    parser.add_argument("--image", required=True,
                        help="the course image (docker build -t IMAGE .), pushed where the cluster can pull it")
    parser.add_argument("--name", default=settings.K8S_JOB_NAME, help="the Job's name (default: %(default)s)")
    parser.add_argument("--namespace", help="namespace of every object (default: kubectl's)")
    parser.add_argument("--parallelism", type=int,
                        help=f"pods at once (default: {settings.K8S_PARALLELISM}, or fewer students)")
    parser.add_argument("--submissions-claim", default=settings.SUBMISSIONS_CLAIM,
                        help="PersistentVolumeClaim holding the student folders, mounted read-only (default: "
                             "%(default)s)")
    parser.add_argument("--results-claim", default=settings.RESULTS_CLAIM,
                        help="PersistentVolumeClaim where each pod writes <student>/ (default: %(default)s)")


def _merge_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", type=Path, metavar="RESULTS_DIR",
                        help="one folder per student, as the pods wrote them")
    _submissions(parser, required=True)
    _out(parser, "where the class summary.json and report.md go", required=True)


def _release_options(parser: argparse.ArgumentParser) -> None:
    _out(parser, "where the student version goes (default: release/ in this repository)")


def _finalize_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", type=Path, metavar="OUT",
                        help="a graded class's output folder (summary.json, manual.csv filled in)")
    parser.add_argument("--roster", type=Path, metavar="FILE",
                        help="CSV of student folder name, LMS id: adds an lms_id column to gradebook.csv")


def build_parser() -> argparse.ArgumentParser:
    doc = grader.__doc__
    parser = argparse.ArgumentParser(prog="python -m grader", description=doc.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=doc.split("\n\n", 1)[1])
    commands = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    helps = {"run": "grade this repository or --submissions DIR (the default command)",
             "k8s": "write the Kubernetes Job that grades a class, one pod per student (YAML on stdout)",
             "merge": "merge the pods' results into one class report",
             "release": "write the student version of the lab (solutions stripped, no course tools)",
             "finalize": "read the filled-in manual.csv: the final gradebook.csv and feedback/<student>.html"}
    adders = {"run": _run_options, "k8s": _k8s_options, "merge": _merge_options, "release": _release_options,
              "finalize": _finalize_options}
    for name in COMMANDS:
        adders[name](commands.add_parser(name, help=helps[name], description=helps[name]))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "run")  # `python -m grader --profile smoke` is `python -m grader run --profile smoke`
    parser = build_parser()
    args = parser.parse_args(argv)
    sub = parser._subparsers._group_actions[0].choices[args.command]
    if hasattr(args, "profile"):
        profile, args.profile_reason = config.resolve_profile(args.profile)
        args.profile = profile.name
    command = {"run": run.main, "k8s": k8s.main, "merge": merge.main, "release": release.main,
               "finalize": finalize.main}[args.command]
    return command(args, sub.error)

"""``rtsam dicom send|echo|find|fetch``: DICOM files to and from a PACS (C-STORE, C-FIND, C-GET) or a
DICOMweb server (fetch from a URL)."""

from __future__ import annotations

from .common import print_json


def register(subparsers) -> None:
    p = subparsers.add_parser("dicom", help="send DICOM to a PACS, check it answers, query it, fetch a study",
                              description="PACS nodes are AET@HOST:PORT; fetch also takes a DICOMweb root URL.")
    commands = p.add_subparsers(dest="dicom_command", metavar="ACTION", required=True)
    send = commands.add_parser("send", help="C-STORE files (folders searched) to a PACS")
    send.add_argument("files", nargs="+", metavar="FILE", help="DICOM files or folders")
    send.add_argument("--to", required=True, metavar="AET@HOST:PORT", help="the PACS")
    send.set_defaults(func=run_send)
    echo = commands.add_parser("echo", help="C-ECHO: does the PACS answer us?")
    echo.add_argument("--to", required=True, metavar="AET@HOST:PORT", help="the PACS")
    echo.set_defaults(func=run_echo)
    find = commands.add_parser("find", help="C-FIND a study: patient, date, modalities, instance count")
    find.add_argument("--study", required=True, metavar="UID", help="StudyInstanceUID")
    find.add_argument("--from", dest="source", required=True, metavar="AET@HOST:PORT", help="the PACS")
    find.set_defaults(func=run_find)
    fetch = commands.add_parser("fetch", help="C-GET a study (or WADO-RS from a DICOMweb URL) into a folder")
    fetch.add_argument("--study", required=True, metavar="UID", help="StudyInstanceUID")
    fetch.add_argument("--from", dest="source", required=True, metavar="AET@HOST:PORT|URL",
                       help="the PACS, or a DICOMweb root URL (http://host:port/dicom-web)")
    fetch.add_argument("--out", required=True, metavar="DIR", help="folder for the files (<SOPInstanceUID>.dcm)")
    fetch.set_defaults(func=run_fetch)
    for sub in (send, echo, find, fetch):
        add_network_options(sub)
        sub.add_argument("--json", action="store_true", help="print JSON")


def add_network_options(parser, prefix: str = "--") -> None:
    """Calling AE title, timeout and retries (``prefix`` "--pacs-" on commands with other options)."""
    from ..io.pacs import CALLING_AET, RETRIES, TIMEOUT_S

    parser.add_argument(f"{prefix}aet", dest="aet", default=CALLING_AET,
                        help=f"our calling AE title (default {CALLING_AET})")
    parser.add_argument(f"{prefix}timeout", dest="timeout", type=float, default=TIMEOUT_S, metavar="S",
                        help=f"seconds to wait for each connection and answer (default {TIMEOUT_S:g})")
    parser.add_argument(f"{prefix}retries", dest="retries", type=int, default=RETRIES,
                        help=f"retries of a connection that fails or times out (default {RETRIES})")


def network(args) -> dict:
    return {"calling_aet": args.aet, "timeout": args.timeout, "retries": args.retries}


def fetch_study(source: str, study_uid: str, out, args) -> list:
    """A study from a PACS node or a DICOMweb URL into ``out``; the files."""
    from ..io.dicomweb import fetch_dicomweb, is_url
    from ..io.pacs import fetch, parse_node

    if is_url(source):
        return fetch_dicomweb(source, study_uid, out, args.timeout, args.retries)
    return fetch(parse_node(source), study_uid, out, **network(args))


def send_files(files, destination: str, args) -> list:
    from ..io.pacs import parse_node, send

    return send(files, parse_node(destination), **network(args))


def run_send(args) -> int:
    files = send_files(args.files, args.to, args)
    report = {"to": args.to, "sent": len(files), "files": [str(f) for f in files]}
    if args.json:
        print_json(report)
    else:
        print(f"sent {len(files)} file(s) to {args.to}")
    return 0


def run_echo(args) -> int:
    from ..io.pacs import echo, parse_node

    echo(parse_node(args.to), **network(args))
    if args.json:
        print_json({"to": args.to, "answered": True})
    else:
        print(f"{args.to} answered")
    return 0


def run_find(args) -> int:
    from ..io.pacs import find_study, parse_node

    study = find_study(parse_node(args.source), args.study, **network(args))
    if args.json:
        print_json(study)
    else:
        print(f"study {study['study_uid']}: patient {study['patient_id']}, date {study['study_date']}, "
              f"{study['instances']} instance(s), modalities {' '.join(study['modalities'])}")
    return 0


def run_fetch(args) -> int:
    files = fetch_study(args.source, args.study, args.out, args)
    report = {"from": args.source, "study_uid": args.study, "out": args.out, "files": len(files)}
    if args.json:
        print_json(report)
    else:
        print(f"fetched {len(files)} file(s) of study {args.study} to {args.out}")
    return 0

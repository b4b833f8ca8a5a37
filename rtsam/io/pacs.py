"""PACS over DICOM networking (pynetdicom): C-STORE files, C-FIND and C-GET a study.

Nodes are written ``AET@HOST:PORT``. Every call has a timeout, retries connections that fail
or time out, and turns refusals into one clear ``PACSError`` (association rejected, unknown AE
title, timeout, study not found). DICOMweb servers are in dicomweb.py.
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, PACSError
from .dicom import is_dicom_file, read_dataset

CALLING_AET = "RTSAM"
TIMEOUT_S, RETRIES, RETRY_WAIT_S = 30.0, 2, 1.0
NODE = re.compile(r"^(?P<aet>[^@]{1,16})@(?P<host>[^:@]+):(?P<port>\d{1,5})$")
SUCCESS, WARNINGS, PENDING = {0x0000}, {0x0001, 0xB000, 0xB006, 0xB007}, {0xFF00, 0xFF01}
# A-ASSOCIATE-RJ reasons from the service user (PS3.8 9.3.4)
REJECT_REASONS = {2: "application context not supported", 3: "calling AE title {calling} not recognised",
                  7: "called AE title {called} not recognised"}
# Storage SOP classes a C-GET accepts back (at most 128 presentation contexts in all).
RETRIEVED_CLASSES = (
    "CTImageStorage", "EnhancedCTImageStorage", "MRImageStorage", "EnhancedMRImageStorage", "PositronEmissionTomographyImageStorage",
    "RTDoseStorage", "RTStructureSetStorage", "RTPlanStorage", "RTIonPlanStorage", "RTImageStorage",
    "SegmentationStorage", "SpatialRegistrationStorage", "DeformableSpatialRegistrationStorage",
    "SecondaryCaptureImageStorage", "ComputedRadiographyImageStorage", "EncapsulatedPDFStorage",
    "EnhancedPETImageStorage", "NuclearMedicineImageStorage", "DigitalXRayImageStorageForPresentation",
    "RTBeamsTreatmentRecordStorage", "RTIonBeamsTreatmentRecordStorage", "RTTreatmentSummaryRecordStorage",
    "SurfaceSegmentationStorage", "KeyObjectSelectionDocumentStorage", "BasicTextSRStorage", "EnhancedSRStorage",
    "ComprehensiveSRStorage", "GrayscaleSoftcopyPresentationStateStorage",
)


@dataclass(frozen=True)
class Node:
    aet: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.aet}@{self.host}:{self.port}"


def parse_node(text: str) -> Node:
    """``AET@HOST:PORT`` -> Node; InputError naming the expected form."""
    match = NODE.match(text.strip())
    if not match or not 0 < int(match["port"]) < 65536:
        raise InputError(f"a DICOM node reads AET@HOST:PORT (AE title of at most 16 characters), got {text!r}")
    return Node(match["aet"].strip(), match["host"], int(match["port"]))


def dicom_files(paths) -> list[Path]:
    """The DICOM files among the paths, folders searched recursively; InputError when none."""
    found = []
    for path in map(Path, paths):
        if not path.exists():
            raise InputError("file or folder not found", path)
        candidates = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        dicom = [p for p in candidates if is_dicom_file(p)]
        if not path.is_dir() and not dicom:
            raise InputError("not a DICOM file (no DICM preamble)", path)
        found += dicom
    if not found:
        raise InputError("no DICOM files to send", ", ".join(map(str, paths)))
    return found


def send(paths, node: Node, calling_aet: str = CALLING_AET, timeout: float = TIMEOUT_S,
         retries: int = RETRIES) -> list[Path]:
    """C-STORE the DICOM files (folders searched) to the node in one association; the files sent."""
    files = dicom_files(paths)
    headers = [read_dataset(f, header_only=True) for f in files]
    contexts = sorted({(str(h.file_meta.MediaStorageSOPClassUID), str(h.file_meta.TransferSyntaxUID)) for h in headers})
    if len(contexts) > 128:  # one presentation context per (SOP class, transfer syntax)
        raise InputError("more than 128 kinds of DICOM object in one send; send them in groups")

    def requested(ae):
        for sop_class, syntax in contexts:
            ae.add_requested_context(sop_class, [syntax])

    assoc = _associate(node, calling_aet, timeout, retries, requested)
    try:
        for path in files:
            ds = read_dataset(path)
            status = _checked(assoc.send_c_store(ds), node, f"C-STORE of {path}")
            if status.Status not in SUCCESS | WARNINGS:
                raise PACSError(f"{node} refused {path} (status 0x{status.Status:04X})")
    finally:
        assoc.release()
    return files


def find_study(node: Node, study_uid: str, calling_aet: str = CALLING_AET, timeout: float = TIMEOUT_S,
               retries: int = RETRIES) -> dict:
    """C-FIND the study: its patient, date, modalities and instance count; PACSError when absent."""
    from pydicom.dataset import Dataset
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

    query = Dataset()
    query.QueryRetrieveLevel, query.StudyInstanceUID = "STUDY", study_uid
    query.PatientID = query.PatientName = query.StudyDate = query.ModalitiesInStudy = ""
    query.NumberOfStudyRelatedInstances = ""
    assoc = _associate(node, calling_aet, timeout, retries, lambda ae: ae.add_requested_context(FIND))
    try:
        matches = [identifier for status, identifier in assoc.send_c_find(query, FIND)
                   if _checked(status, node, "C-FIND").Status in PENDING and identifier is not None]
    finally:
        assoc.release()
    if not matches:
        raise PACSError(f"study {study_uid} not found on {node}")
    found = matches[0]
    modalities = found.get("ModalitiesInStudy") or []
    return {"study_uid": study_uid, "patient_id": str(found.get("PatientID", "")),
            "study_date": str(found.get("StudyDate", "")),
            "modalities": [modalities] if isinstance(modalities, str) else list(modalities),
            "instances": int(found.get("NumberOfStudyRelatedInstances") or 0)}


def fetch(node: Node, study_uid: str, out: str | Path, calling_aet: str = CALLING_AET, timeout: float = TIMEOUT_S,
          retries: int = RETRIES) -> list[Path]:
    """C-GET every instance of a study into ``out`` (``<SOPInstanceUID>.dcm``); the files written.
    The study is looked up first (C-FIND), so a missing one says so."""
    from pynetdicom import build_role, evt, sop_class
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GET
    from pydicom.dataset import Dataset

    find_study(node, study_uid, calling_aet, timeout, retries)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def store(event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        path = out / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        written.append(path)
        return 0x0000

    classes = [getattr(sop_class, name) for name in RETRIEVED_CLASSES]

    def requested(ae):
        ae.add_requested_context(GET)
        for uid in classes:
            ae.add_requested_context(uid)

    roles = [build_role(uid, scp_role=True) for uid in classes]
    query = Dataset()
    query.QueryRetrieveLevel, query.StudyInstanceUID = "STUDY", study_uid
    assoc = _associate(node, calling_aet, timeout, retries, requested, roles, [(evt.EVT_C_STORE, store)])
    try:
        statuses = [_checked(status, node, "C-GET") for status, _ in assoc.send_c_get(query, GET)]
    finally:
        assoc.release()
    final = statuses[-1]
    failed = int(final.get("NumberOfFailedSuboperations") or 0)
    if final.Status not in SUCCESS | WARNINGS or failed or not written:
        raise PACSError(f"C-GET of study {study_uid} from {node} incomplete (status 0x{final.Status:04X}, "
                        f"{len(written)} received, {failed} failed: objects of a kind rtsam does not take, "
                        f"or refused by the PACS)")
    return written


def echo(node: Node, calling_aet: str = CALLING_AET, timeout: float = TIMEOUT_S, retries: int = RETRIES) -> None:
    """C-ECHO: PACSError unless the node answers."""
    from pynetdicom.sop_class import Verification

    assoc = _associate(node, calling_aet, timeout, retries, lambda ae: ae.add_requested_context(Verification))
    try:
        _checked(assoc.send_c_echo(), node, "C-ECHO")
    finally:
        assoc.release()


# --- association -------------------------------------------------------------------------
def _associate(node: Node, calling_aet: str, timeout: float, retries: int, requested, roles=None, handlers=None):
    """An established association; connection failures and timeouts retried, rejections not."""
    from pynetdicom import AE

    for attempt in range(retries + 1):
        if attempt:
            time.sleep(RETRY_WAIT_S * attempt)
        try:
            _reachable(node, timeout)
        except PACSError as error:
            failure = str(error)
            continue
        ae = AE(ae_title=calling_aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = timeout
        requested(ae)
        assoc = ae.associate(node.host, node.port, ae_title=node.aet, ext_neg=roles, evt_handlers=handlers)
        if assoc.is_established:
            return assoc
        if assoc.is_rejected:
            raise PACSError(_rejection(assoc.acceptor.primitive, node, calling_aet))
        failure = f"{node} did not answer the association request within {timeout:g} s"
    raise PACSError(f"{failure} ({retries + 1} attempts)")


def _reachable(node: Node, timeout: float) -> None:
    try:
        socket.create_connection((node.host, node.port), timeout=timeout).close()
    except socket.timeout:
        raise PACSError(f"cannot connect to {node}: timed out after {timeout:g} s") from None
    except OSError as error:
        raise PACSError(f"cannot connect to {node}: {error.strerror or error}") from None


def _rejection(primitive, node: Node, calling_aet: str) -> str:
    from_user = primitive is not None and primitive.result_source == 1  # reasons differ by source
    reason = REJECT_REASONS.get(primitive.diagnostic) if from_user else None
    if reason:
        return f"{node} rejected the association: {reason.format(calling=calling_aet, called=node.aet)}"
    detail = f"{primitive.result_str}, {primitive.source_str}, {primitive.reason_str}" if primitive else "no reason"
    return f"{node} rejected the association ({detail})"


def _checked(status, node: Node, what: str):
    """The status dataset; PACSError when the peer aborted or did not answer in time."""
    if status is None or "Status" not in status:
        raise PACSError(f"{what}: {node} aborted or did not answer in time")
    return status

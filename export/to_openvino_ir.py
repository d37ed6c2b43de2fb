"""``.onnx`` → OpenVINO IR (``model.xml`` + ``model.bin``), with the card, checked for parity.

The OpenVINO backend reads ``.onnx`` files directly, so an IR is optional: it skips the ONNX
import at every open. OpenVINO's own ``convert_model``/``save_model`` convert; weights stay
fp32 (``save_model`` would compress them to fp16 by default) unless ``compress_fp16`` asks,
since the IR must embed as the ONNX file does: cosine >= 0.9999 against onnxruntime on real
photos (an int8 file: its export bar, 0.98), or the export fails.

The IR is written into a temporary folder beside the target and checked there; only an IR
that passed replaces the target (``.bin`` first, then the ``.xml`` that names it), so a crash
or a failed check leaves an earlier good IR as it was.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sketchsearch.data.errors import UsageError
from sketchsearch.export.backend_parity import ParityReport, check_parity, require_parity
from sketchsearch.runtime.engines.openvino_engine import CARD_RT_PATH
from sketchsearch.runtime.model_card import ModelCard, ModelCardError, read_onnx_card


@dataclass(frozen=True)
class IrExport:
    path: Path  # model.xml; its weights are model.bin beside it
    parity: ParityReport


def ir_path(onnx: Path, output: Path | None) -> Path:
    """``--output``, else ``model.onnx`` → ``model.xml`` beside it; refuses other suffixes."""
    path = output or onnx.with_suffix(".xml")
    if path.suffix.lower() != ".xml":
        raise UsageError(f"--output {path}: an OpenVINO IR is a .xml file (weights in .bin)")
    if onnx.suffix.lower() != ".onnx":
        raise UsageError(f"--onnx {onnx}: expected an .onnx file from `sketchsearch export onnx`")
    return path


def export_openvino(
    onnx: Path,
    output: Path | None = None,
    compress_fp16: bool = False,
    images: Path | None = None,
) -> IrExport:
    """Convert ``onnx`` to an IR with its card; one that fails parity is not written."""
    target = ir_path(onnx, output)
    card = read_onnx_card(onnx)  # refuses a file without a card before converting anything
    from sketchsearch.runtime.engines.openvino_engine import openvino_core

    openvino_core()  # BackendUnavailableError naming the extra when openvino is not installed
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".openvino-") as scratch:
        staged = Path(scratch) / target.name
        _convert(onnx, card, staged, compress_fp16)
        checked = check_parity(onnx, staged, "openvino", images)
        parity = require_parity(replace(checked, candidate=str(target)))  # names the target
        os.replace(staged.with_suffix(".bin"), target.with_suffix(".bin"))
        os.replace(staged, target)
    return IrExport(target, parity)


def _convert(onnx: Path, card: ModelCard, staged: Path, compress_fp16: bool) -> None:
    """OpenVINO's conversion of ``onnx`` to ``staged`` (.xml + .bin), the card in its rt_info;
    OpenVINO's own exceptions become one line naming the file."""
    import openvino as ov
    from openvino.tools.ovc.error import Error as ConversionError

    try:
        model: Any = ov.convert_model(str(onnx))
        model.set_rt_info(card.to_json(), CARD_RT_PATH)  # kept by convert_model today; made sure
        ov.save_model(model, str(staged), compress_to_fp16=compress_fp16)
    except (ConversionError, RuntimeError) as err:
        text = str(err).strip()
        reason = text.splitlines()[0] if text else type(err).__name__
        raise ModelCardError(f"{onnx}: OpenVINO cannot convert it ({reason})") from None

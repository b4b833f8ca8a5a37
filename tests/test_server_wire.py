"""Wire format and API-key checks of the rtsam server (no engine, no network)."""

import struct
import zlib

import numpy as np
import pytest
from conftest import oblique_direction

from rtsam.engines.base import Click, Prompt
from rtsam.errors import InputError
from rtsam.server import wire
from rtsam.server.auth import ANONYMOUS, AuthError, KeyChecker, load_keys
from rtsam.volume import Volume

KEY = "k" * 20


def test_volume_round_trip_keeps_values_dtype_and_oblique_geometry(rng):
    image = Volume(rng.integers(-1000, 2000, (4, 5, 6)).astype(np.int16), spacing=(0.7, 0.8, 2.5),
                   origin=(-10.0, 20.5, 3.25), direction=oblique_direction(), frame_of_reference_uid="1.2.3")
    prob = image.with_array(rng.random((4, 5, 6)).astype(np.float32))
    frame = wire.decode(wire.encode_volumes({"image": image, "probability": prob}, {"note": "x"}))
    for name, original in [("image", image), ("probability", prob)]:
        back = frame.volume(name)
        assert back.array.dtype == original.array.dtype
        assert np.array_equal(back.array, original.array)
        assert back.same_grid(original, atol=0) and back.frame_of_reference_uid == "1.2.3"
    assert frame.meta == {"note": "x"}


def test_prompt_dict_round_trip():
    prompt = Prompt(task="edema", box_lps=[[0, 0, 0], [5, 6, 7]], clicks=[Click((1, 2, 3), False)], box_fitted=True,
                    presence="on")
    back = wire.prompt_from_dict(wire.prompt_to_dict(prompt))
    assert back.task == "edema" and back.clicks == prompt.clicks and back.box_fitted and back.presence == "on"
    plain = wire.prompt_to_dict(Prompt(box_lps=prompt.box_lps))
    assert "presence" not in plain  # left to the engine: what servers before the switch accept
    assert not wire.prompt_from_dict(plain).box_fitted and wire.prompt_from_dict(plain).presence is None
    with pytest.raises(InputError, match="presence must be 'on', 'off' or None"):
        wire.prompt_from_dict({**plain, "presence": "yes"})
    assert np.array_equal(back.box_lps, prompt.box_lps)


def _frame(entries, payload=b"", magic=wire.MAGIC):
    import json

    header = json.dumps({"arrays": entries}).encode()
    return magic + struct.pack("<I", len(header)) + header + payload


@pytest.mark.parametrize("data, message", [
    (b"GIF89a...", "not an rtsam frame"),
    (wire.MAGIC + b"\x01", "truncated"),
    (wire.MAGIC + struct.pack("<I", 5) + b"{nope", "not valid JSON"),
    (_frame([{"name": "a", "dtype": "|O", "shape": [2], "compressed_bytes": 0}]), "dtype"),
    (_frame([{"name": "a", "dtype": "|u1", "shape": [4], "compressed_bytes": 99}], b"x"), "truncated"),
    (_frame([{"name": "a", "dtype": "|u1", "shape": [4], "compressed_bytes": 3}], b"abc"), "not valid zlib"),
    (_frame([{"name": "a", "dtype": "|u1", "shape": [4], "compressed_bytes": 11}], zlib.compress(b"abc")),
     "different size"),
    (_frame([{"name": "a", "dtype": "<f4", "shape": [4096, 4096, 4096], "compressed_bytes": 0}]), "over the"),
])
def test_malformed_frames_raise_clear_input_errors(data, message):
    with pytest.raises(InputError, match=message):
        wire.decode(data, max_array_bytes=1 << 20)


def test_decompression_is_bounded_by_the_declared_size():
    bomb = zlib.compress(bytes(50 << 20))  # 50 MiB of zeros in ~50 kB
    data = _frame([{"name": "a", "dtype": "|u1", "shape": [16], "compressed_bytes": len(bomb)}], bomb)
    with pytest.raises(InputError, match="different size"):
        wire.decode(data)


def test_geometry_must_be_a_rotation():
    geometry = {"spacing": [1, 1, 1], "origin": [0, 0, 0], "direction": [2, 0, 0, 0, 1, 0, 0, 0, 1]}
    with pytest.raises(InputError, match="rotation"):
        wire.volume_from_geometry(np.zeros((2, 2, 2)), geometry)


def test_key_checker_accepts_configured_keys_only():
    checker = KeyChecker([KEY, "m" * 20])
    assert checker.owner(KEY, None) == checker.owner(None, f"Bearer {KEY}") != checker.owner("m" * 20, None)
    assert KEY not in checker.owner(KEY, None)  # owners are fingerprints, not keys
    for bad in [(None, None), ("wrong" * 5, None), (None, "Basic abc")]:
        with pytest.raises(AuthError):
            checker.owner(*bad)
    assert KeyChecker([]).owner(None, None) == ANONYMOUS


def test_key_file(tmp_path):
    path = tmp_path / "keys.txt"
    path.write_text(f"# clinic A\n{KEY}\n\n{'m' * 20}\n")
    assert load_keys(api_key_file=path) == [KEY, "m" * 20]
    path.write_text("short\n")
    with pytest.raises(InputError, match="16 characters"):
        load_keys(api_key_file=path)
    with pytest.raises(InputError, match="cannot read"):
        load_keys(api_key_file=tmp_path / "missing.txt")


def test_serve_refuses_a_short_api_key_with_one_line(capsys):
    from rtsam.cli import main

    assert main(["serve", "--api-key", "short"]) == 2
    assert "at least 16 characters" in capsys.readouterr().err

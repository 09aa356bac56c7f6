"""`realrl keys generate`: CURVE key pairs in pyzmq's certificate format, never overwritten."""

import json


def test_keys_generate_writes_a_curve_pair_with_an_owner_only_secret(tmp_path, capsys):
    import stat

    import zmq.auth

    from realrl.cli import main

    assert main(["keys", "generate", str(tmp_path / "keys"), "--name", "robot-1", "--json"]) == 0
    paths = json.loads(capsys.readouterr().out)
    public, secret = zmq.auth.load_certificate(paths["secret"])
    assert zmq.auth.load_certificate(paths["public"]) == (public, None)
    assert len(public) == len(secret) == 40  # Z85-encoded 32-byte keys
    assert stat.S_IMODE((tmp_path / "keys" / "robot-1.key_secret").stat().st_mode) == 0o600
    assert main(["keys", "generate", str(tmp_path / "keys"), "--name", "robot-1"]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert zmq.auth.load_certificate(paths["secret"])[0] == public  # the pair is untouched
    assert main(["keys", "generate", str(tmp_path / "keys"), "--name", "../evil"]) == 2

"""SSM public parameters against moto's own: Amazon Linux's, with an AMI ID per region (tests/integration/ssm)."""

from __future__ import annotations

import subprocess

from conftest import BIN, HERE


def test_ssm_parameters_per_region(aws_env, moto_public_endpoint, tmp_path):
    env = dict(aws_env, AWS_ENDPOINT_URL=moto_public_endpoint)
    cmd = [str(BIN / "ansible-playbook"), str(HERE / "ssm" / "ssm_parameters.yml")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert "failed=0" in proc.stdout

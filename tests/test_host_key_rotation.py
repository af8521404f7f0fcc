"""Rotating SECRET_KEY keeps the hosts' stored private keys usable: with the old key in
SECRET_KEY_FALLBACKS they still connect, ``reencrypt_host_keys`` moves them to the new key, and
without the old key the connection test and the job say what is wrong instead of failing with a 500."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from benches import services
from benches.models import DevBench, Host, Job
from benches.provisioning import host_keys
from tests.api_helpers import bearer_client

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_ssh_connections")]

OLD_SECRET = "old-secret-" + "o" * 50
NEW_SECRET = "new-secret-" + "n" * 50


@pytest.fixture
def stored_key_host(sshd_host, tmp_path, settings):
    """An SSH host on the real sshd whose private key was pasted (stored encrypted) under OLD_SECRET."""
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = OLD_SECRET, []
    settings.DEVBENCH_LOCAL_HOST = False
    return services.register_host(
        name="hv1", address=sshd_host.host, port=sshd_host.port, username=sshd_host.username,
        private_key=sshd_host.client_key_path.read_text(), known_hosts_file=str(sshd_host.known_hosts_path),
        script_path=str(sshd_host.make_agent_script(tmp_path)),
    )


def rotate(settings, *, fallbacks: list[str]) -> None:
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = NEW_SECRET, fallbacks


def test_a_key_stored_under_the_old_secret_connects_while_it_is_in_the_fallbacks(stored_key_host, admin_user,
                                                                                 settings):
    rotate(settings, fallbacks=[OLD_SECRET])
    body = bearer_client(admin_user).post(f"/api/v1/hosts/{stored_key_host.pk}/test-connection/").json()
    assert body["ok"] is True and body["error"] == ""


def test_without_the_old_secret_the_connection_test_says_the_key_cannot_be_decrypted(stored_key_host, admin_user,
                                                                                    settings):
    rotate(settings, fallbacks=[])
    response = bearer_client(admin_user).post(f"/api/v1/hosts/{stored_key_host.pk}/test-connection/")
    assert response.status_code == 200
    assert response.json() == {
        "ok": False, "latencyMs": None, "hostKey": None, "fingerprint": None,
        "error": f"The stored private key of host hv1 cannot be decrypted: {host_keys.UNDECRYPTABLE_ADVICE}",
        "capabilities": None, "backend": "",
    }


def test_without_the_old_secret_a_create_job_fails_with_the_advice(stored_key_host, user, settings, run_jobs):
    rotate(settings, fallbacks=[])
    bench = services.create_bench(user=user, name="rotated")
    [job] = run_jobs()
    assert job.state == Job.State.FAILED
    assert job.error.startswith("The stored private key of host hv1 cannot be decrypted")
    assert "SECRET_KEY_FALLBACKS" in job.error
    bench.refresh_from_db()
    assert bench.status == DevBench.Status.ERROR


def test_reencrypt_moves_every_stored_key_to_the_new_secret(stored_key_host, admin_user, settings, capsys):
    rotate(settings, fallbacks=[OLD_SECRET])
    before = stored_key_host.private_key_encrypted
    call_command("reencrypt_host_keys")
    assert "Re-encrypted 1 stored private key(s)" in capsys.readouterr().out
    stored_key_host.refresh_from_db()
    assert stored_key_host.private_key_encrypted != before

    settings.SECRET_KEY_FALLBACKS = []  # the old key can go now
    body = bearer_client(admin_user).post(f"/api/v1/hosts/{stored_key_host.pk}/test-connection/").json()
    assert body["ok"] is True, body


def test_reencrypt_reports_keys_it_cannot_decrypt_and_leaves_them_alone(stored_key_host, settings):
    rotate(settings, fallbacks=[])
    before = stored_key_host.private_key_encrypted
    with pytest.raises(CommandError, match=r"Could not decrypt the private key of: hv1; .*SECRET_KEY_FALLBACKS"):
        call_command("reencrypt_host_keys")
    assert Host.objects.get(pk=stored_key_host.pk).private_key_encrypted == before


def test_the_admin_panels_connection_test_shows_the_advice(stored_key_host, admin_user, settings):
    rotate(settings, fallbacks=[])
    client = Client()
    client.force_login(admin_user)  # signed in under the new key: the old sessions went with the old key
    response = client.post("/admin/benches/host/", {"action": "test_connection",
                                                    "_selected_action": [stored_key_host.pk]}, follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert "The stored private key of host hv1 cannot be decrypted" in page
    assert "SECRET_KEY_FALLBACKS" in page

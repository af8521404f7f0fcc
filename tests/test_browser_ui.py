"""DevBench as a person uses it: headless Chromium against Daphne, a real Celery worker, Redis
and the built-in local host running the host agent. Each test signs in through the pages and
asserts on what the page shows; the screenshots of the main pages are written on the way
(see tests/browser_fixtures.py for where they go)."""

from __future__ import annotations

import re
import subprocess
import time
from zoneinfo import ZoneInfo

import pytest

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
    from playwright.sync_api import expect
except ImportError:  # the `ui` fixture skips these tests (or fails them in CI) and says why
    expect = None
    PlaywrightTimeoutError = TimeoutError

from accounts.models import User
from accounts.services import create_api_key
from benches import services as bench_services
from benches.models import DevBench, Job
from benches.provisioning.messages import chunk_text
from tests.bench_fixtures import wait_for_status
from tests.browser_fixtures import PHONE, bench_card
from tests.conftest import STRONG_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

NEW_USER_PASSWORD = "Another-Sturdy-9"

# One sample of a streaming card, read in a single step so that its parts agree.
CARD_SAMPLE_JS = """(card) => {
  const bar = card.querySelector('.bench-progress');
  if (!bar) return null;  // the card is being swapped: htmx moves its progress bar into the new one
  const inner = bar.querySelector('.progress-bar');
  return {
    status: card.getAttribute('data-status'),
    log: card.querySelector('.bench-log').textContent,
    height: card.getBoundingClientRect().height,
    progressVisible: !bar.classList.contains('d-none'),
    progressNow: Number(bar.getAttribute('aria-valuenow')),
    barWidth: inner.style.width,
    barFraction: inner.getBoundingClientRect().width / bar.getBoundingClientRect().width,
    elapsed: card.querySelector('.bench-elapsed').textContent,
  };
}"""


def stored_log(bench: DevBench, command: str = Job.Command.CREATE) -> str:
    job = Job.objects.filter(bench=bench, command=command).latest("created_at")
    return "".join(chunk_text(chunk) for chunk in job.chunks.order_by("seq"))


def last_progress(log: str) -> int | None:
    values = re.findall(r"^PROGRESS=(\d+)\s*$", log, re.MULTILINE)
    return int(values[-1]) if values else None


def test_admin_adds_a_user_who_signs_in_and_is_refused_the_admin_panel(ui, admin_user):
    phone = ui.new_page(viewport=PHONE)
    phone.goto("/login")
    ui.assert_no_horizontal_scroll(phone)
    page = ui.new_page()
    page.goto("/login")
    assert ui.unlabelled_controls(page) == []
    ui.screenshots_light_and_dark(page, "login")
    ui.sign_in(page, "boss", STRONG_PASSWORD, lands_on="/admin/")
    expect(page.locator("#site-name")).to_contain_text("DevBench admin")

    page.goto("/admin/accounts/user/add/")
    page.locator("#id_username").fill("carol")
    page.locator("#id_email").fill("carol@example.com")
    usable = page.locator('input[name="usable_password"][value="true"]')
    if usable.count():
        usable.check()
    page.locator("#id_password1").fill(NEW_USER_PASSWORD)
    page.locator("#id_password2").fill(NEW_USER_PASSWORD)
    page.locator('input[name="_save"]').click()
    expect(page.locator(".messagelist .success")).to_contain_text("carol")
    carol = User.objects.get(username="carol")
    assert carol.email == "carol@example.com" and not carol.is_staff and carol.has_usable_password()
    page.goto("/admin/accounts/user/")
    expect(page.locator("#result_list")).to_contain_text("carol@example.com")
    ui.screenshots_light_and_dark(page, "admin")

    page.locator("#logout-form button").click()
    expect(page.get_by_role("link", name=re.compile("log in again", re.IGNORECASE))).to_be_visible()
    page.goto("/dashboard")
    expect(page).to_have_url(re.compile(r"/login"))

    ui.sign_in(page, "carol", NEW_USER_PASSWORD, lands_on="/dashboard")
    expect(page.locator("#signed-in-as")).to_have_text("carol")
    expect(page.locator("#empty-state")).to_be_visible()
    expect(page.locator("#empty-state")).to_contain_text("You have no DevBenches yet")
    expect(page.get_by_role("link", name="Admin panel")).to_have_count(0)
    page.get_by_role("link", name="Help").click()
    expect(page.locator("#ssh-config-empty")).to_contain_text("No SSH configuration yet")
    page.get_by_role("link", name="API keys").click()
    expect(page.locator("#api-keys-empty")).to_contain_text("You have no API keys yet")

    response = page.goto("/admin/")
    assert response.status == 403
    expect(page.locator("main")).to_contain_text("You do not have permission to open this page")
    response = page.goto("/admin/accounts/user/")
    assert response.status == 403

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))


def test_create_streams_the_log_live_and_a_reload_replays_it(ui, user, local_agent):
    local_agent.configure(step_delay=0.25, create_lines=4)
    page = ui.new_page()
    ui.sign_in(page, "alice", STRONG_PASSWORD, lands_on="/dashboard")
    expect(page.locator("#empty-state")).to_be_visible()
    assert ui.unlabelled_controls(page) == []

    # Invalid names are refused inline, before any request.
    name_input = page.get_by_label("New DevBench")
    error = page.locator("#bench-name-error")
    page.get_by_role("button", name="Create").click()
    expect(error).to_have_text("Enter a name for the DevBench.")
    name_input.fill("bad name!")
    expect(error).to_have_text("Use only letters, numbers, hyphens and underscores.")
    expect(name_input).to_have_attribute("aria-invalid", "true")
    page.get_by_role("button", name="Create").click()
    expect(page.locator(".bench-card[data-bench-id]:not([data-bench-id=''])")).to_have_count(0)
    assert not DevBench.objects.exists()

    # Create: the card appears at once and its log fills while the badge says creating.
    page.evaluate("window.__sameDocument = true")
    name_input.fill("web")
    expect(error).to_have_text("")
    page.get_by_role("button", name="Create").click()
    web = bench_card(page, "web")
    expect(web.locator(".bench-status")).to_have_text("creating")
    expect(page.locator("#empty-state")).to_be_hidden()
    expect(page.locator("#bench-count")).to_have_text("1")
    samples = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        # The locator finds the card afresh each time: htmx may swap in the server's rendering of it
        # (hx-preserve moves the progress bar and the log into the new element).
        sample = web.evaluate(CARD_SAMPLE_JS)
        if sample is None:
            time.sleep(0.05)
            continue
        samples.append(sample)
        if sample["status"] != "creating":
            break
        time.sleep(0.05)
    streaming = [s for s in samples if s["status"] == "creating"]
    line_counts = [s["log"].count("\n") for s in streaming]
    assert line_counts == sorted(line_counts), "the log never loses lines"
    assert len(set(line_counts)) >= 6, f"the log should fill line by line, saw {sorted(set(line_counts))}"
    assert {s["height"] for s in streaming if s["log"]} == {streaming[-1]["height"]}, "the card jumped"
    for sample in streaming:  # the bar follows the agent's PROGRESS=<n> lines
        assert sample["progressVisible"]
        assert sample["progressNow"] == (last_progress(sample["log"]) or 0)
        assert sample["barWidth"] == f"{sample['progressNow']}%"
        assert sample["barFraction"] == pytest.approx(sample["progressNow"] / 100, abs=0.02)
    seen_progress = sorted({s["progressNow"] for s in streaming})
    assert len(seen_progress) >= 4 and seen_progress[-1] >= 80, seen_progress
    assert any(re.fullmatch(r"\d+ s elapsed", s["elapsed"]) for s in streaming)

    # Active without a reload; the elapsed time and the progress bar go away.
    expect(web.locator(".bench-status")).to_have_text("active")
    assert page.evaluate("window.__sameDocument") is True
    expect(web.locator(".bench-progress")).to_be_hidden()
    expect(web.locator(".bench-elapsed")).to_have_text("")
    bench = wait_for_status(DevBench.objects.get(name="web"), "active")
    expect(web.locator(".bench-log")).to_contain_text("[create succeeded, exit code 0]")
    assert web.locator(".bench-log").text_content().startswith(stored_log(bench))

    # Copy the SSH command.
    ssh = f"ssh -p {bench.ssh_info} alice@{bench.host.connect_name}"
    expect(web.locator(".bench-ssh")).to_have_text(ssh)
    web.get_by_role("button", name="Copy SSH command").click()
    expect(web.locator(".copy-ssh")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == ssh

    # A second bench, reloaded in the middle of provisioning: the log replays and goes on.
    name_input.fill("db")
    page.get_by_role("button", name="Create").click()
    db = bench_card(page, "db")
    expect(db.locator(".bench-log")).to_contain_text("PROGRESS=30")
    before = db.locator(".bench-log").text_content()
    page.reload()
    expect(db.locator(".bench-status")).to_have_text("creating")
    expect(db.locator(".bench-log")).to_contain_text("Creating VM alice_db")
    ui.screenshot(page, "dashboard-creating-light")
    expect(db.locator(".bench-status")).to_have_text("active")
    expect(db.locator(".bench-log")).to_contain_text("[create succeeded, exit code 0]")
    db_bench = DevBench.objects.get(name="db")
    final = db.locator(".bench-log").text_content()
    assert final.startswith(before) and len(final) > len(before), "the log replayed, then went on"
    assert final == stored_log(db_bench) + "[create succeeded, exit code 0]\n", "every line once, in order"

    # A duplicate name: the server's own message, inline.
    with page.expect_response("**/create-devbench") as response_info:
        name_input.fill("web")
        page.get_by_role("button", name="Create").click()
    response = response_info.value
    assert response.status in (400, 409)
    expect(error).to_have_text(response.json()["error"])
    expect(error).to_be_visible()
    assert DevBench.objects.filter(name="web").count() == 1
    name_input.fill("")

    page.locator(".bench-log").first.evaluate("log => { log.scrollTop = 0; }")
    ui.screenshots_light_and_dark(page, "dashboard")

    # Phone width: no sideways scrolling, and the log keeps its fixed height.
    phone = ui.new_page(viewport=PHONE, context=page.context)
    phone.goto("/dashboard")
    expect(bench_card(phone, "db").locator(".bench-log")).to_contain_text("[create succeeded")
    ui.assert_no_horizontal_scroll(phone)
    ui.screenshot(phone, "dashboard-phone-light")


def test_actions_and_delete_wait_for_the_host(ui, user, local_agent):
    local_agent.configure(step_delay=0)
    doomed = bench_services.create_bench(user=user, name="doomed")
    keeper = bench_services.create_bench(user=user, name="keeper")
    wait_for_status(doomed, "active")
    wait_for_status(keeper, "active")
    local_agent.configure(step_delay=0.4)
    page = ui.new_page()
    ui.sign_in(page, "alice", STRONG_PASSWORD, lands_on="/dashboard")
    keep = bench_card(page, "keeper")
    expect(keep.locator(".bench-status")).to_have_text("active")
    expect(keep.locator(".bench-log")).to_contain_text("[create succeeded, exit code 0]")

    # Stop, then Activate: each command's log replaces the last, the badge follows.
    keep.get_by_role("button", name="Stop keeper").click()
    expect(keep.locator(".bench-log")).to_contain_text("Sending ACPI power button")
    expect(keep.locator(".bench-status")).to_have_text("inactive")
    keep.get_by_role("button", name="Activate keeper").click()
    expect(keep.locator(".bench-log")).to_contain_text("VM alice_keeper activated")
    expect(keep.locator(".bench-status")).to_have_text("active")

    # The VM stops behind DevBench's back; Check status notices.
    keeper.refresh_from_db()
    subprocess.run([str(local_agent.script), "stop", keeper.actual_name], check=True, capture_output=True)
    keep.get_by_role("button", name="Check status keeper").click()
    expect(keep.locator(".bench-status")).to_have_text("inactive")
    expect(keep.get_by_role("button", name="Check status keeper")).to_be_enabled()
    wait_for_status(keeper, "inactive")

    # Delete asks first; "Keep it" keeps it.
    gone = bench_card(page, "doomed")
    gone.get_by_role("button", name="Delete doomed").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("doomed")
    dialog.get_by_role("button", name="Keep it").click()
    expect(dialog).to_be_hidden()
    assert not Job.objects.filter(command=Job.Command.DELETE).exists()

    # Confirmed: deleting while the host works, gone only once the remote delete is done.
    local_agent.configure(step_delay=0.8)
    gone.get_by_role("button", name="Delete doomed").click()
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Delete").click()
    expect(gone.locator(".bench-status")).to_have_text("deleting")
    expect(gone.get_by_role("button", name="Activate doomed")).to_be_disabled()
    expect(gone.locator(".bench-log")).to_contain_text("Powering off VM alice_doomed")
    assert DevBench.objects.filter(name="doomed").exists(), "the row stays while the host deletes the VM"
    expect(gone).to_have_count(0)
    assert not DevBench.objects.filter(name="doomed").exists()
    assert Job.objects.get(command=Job.Command.DELETE).state == Job.State.SUCCEEDED
    expect(page.locator("#bench-count")).to_have_text("1")

    # A failing remote delete keeps the card, in error, with the host's message.
    local_agent.configure(step_delay=0.1, fail_commands=["delete"])
    keep.get_by_role("button", name="Delete keeper").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(keep.locator(".bench-status")).to_have_text("error")
    keeper = wait_for_status(keeper, "error")
    assert "simulated failure" in keeper.last_error
    expect(keep.locator(".bench-error")).to_be_visible()
    expect(keep.locator(".bench-error")).to_have_text(keeper.last_error)
    page.reload()
    expect(keep.locator(".bench-status")).to_have_text("error")
    expect(keep.locator(".bench-error")).to_have_text(keeper.last_error)

    # Removing the last bench shows the empty state again.
    local_agent.configure(step_delay=0)
    keep.get_by_role("button", name="Delete keeper").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(keep).to_have_count(0)
    expect(page.locator("#empty-state")).to_be_visible()
    expect(page.locator("#bench-count")).to_have_text("0")


def test_help_download_theme_and_local_times(ui, user, local_agent):
    local_agent.configure(step_delay=0)
    bench = wait_for_status(bench_services.create_bench(user=user, name="docs"), "active")
    key, _raw = create_api_key(user=user, name="laptop CLI")
    page = ui.new_page()
    ui.sign_in(page, "alice", STRONG_PASSWORD, lands_on="/dashboard")

    # The help page shows the bench's SSH config block, and the download is the same text.
    page.get_by_role("link", name="Help").click()
    expect(page).to_have_url(re.compile(r"/help$"))
    block = page.locator('.ssh-config-entry[data-bench="docs"] .ssh-config-block')
    expect(block).to_contain_text("Host devbench-docs")
    expect(block).to_contain_text(f"Port {bench.ssh_info}")
    assert ui.unlabelled_controls(page) == []
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download ~/.ssh/config").click()
    download = download_info.value
    assert download.suggested_filename == "devbench_ssh_config"
    with open(download.path()) as handle:
        config = handle.read()
    assert block.text_content() in config
    ui.screenshots_light_and_dark(page, "help")

    # The dark theme, chosen on one page, holds on the others, after a reload and in a new tab.
    html = page.locator("html")
    expect(html).to_have_attribute("data-bs-theme", "light")
    page.get_by_label("Dark theme").check()
    expect(html).to_have_attribute("data-bs-theme", "dark")
    for path in ("/dashboard", "/account/api-keys", "/help"):
        page.goto(path)
        expect(html).to_have_attribute("data-bs-theme", "dark")
        expect(page.get_by_label("Dark theme")).to_be_checked()
    page.reload()
    expect(html).to_have_attribute("data-bs-theme", "dark")
    other_tab = ui.new_page(context=page.context)
    other_tab.goto("/dashboard")
    expect(other_tab.locator("html")).to_have_attribute("data-bs-theme", "dark")
    page.get_by_label("Dark theme").uncheck()
    expect(html).to_have_attribute("data-bs-theme", "light")
    expect(other_tab.locator("html")).to_have_attribute("data-bs-theme", "light")  # without a reload

    # The API keys page, and its phone layout.
    page.goto("/account/api-keys")
    expect(page.get_by_role("cell", name="laptop CLI", exact=True)).to_be_visible()
    assert ui.unlabelled_controls(page) == []
    ui.screenshots_light_and_dark(page, "api-keys")
    phone = ui.new_page(viewport=PHONE, context=page.context)
    for path in ("/help", "/account/api-keys"):
        phone.goto(path)
        ui.assert_no_horizontal_scroll(phone)

    # Times in the reader's locale and time zone.
    berlin = ui.new_page(locale="de-DE", timezone_id="Europe/Berlin")
    ui.sign_in(berlin, "alice", STRONG_PASSWORD, lands_on="/dashboard")
    created = bench.created_at.astimezone(ZoneInfo("Europe/Berlin"))
    created_text = bench_card(berlin, "docs").locator("time.bench-created")
    expect(created_text).to_contain_text(created.strftime("%d.%m.%Y"))
    expect(created_text).to_contain_text(created.strftime("%H:%M"))
    expect(created_text).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))
    berlin.goto("/account/api-keys")
    key_created = key.created_at.astimezone(ZoneInfo("Europe/Berlin"))
    expect(berlin.locator("td time").first).to_have_text(
        re.compile(re.escape(key_created.strftime("%d.%m.%Y")) + r".*" + re.escape(key_created.strftime("%H:%M")))
    )


def test_create_from_an_image_and_plan_then_snapshot_and_restore(ui, user, local_agent):
    from benches.models import Host, Image, Plan

    local_agent.configure(simulated_images="debian-12,ubuntu-24.04")
    local = Host.objects.get(name="local")
    for name, image_id, default in (("Debian 12", "debian-12", True), ("Ubuntu 24.04", "ubuntu-24.04", False)):
        Image.objects.create(name=name, image_id=image_id, is_default=default).hosts.add(local)
    Plan.objects.create(name="Small", vcpus=1, memory_mib=1024, disk_gib=10, is_default=True)
    Plan.objects.create(name="Large", vcpus=4, memory_mib=8192, disk_gib=40)
    page = ui.new_page()
    ui.sign_in(page, "alice", STRONG_PASSWORD, lands_on="/dashboard")
    assert ui.unlabelled_controls(page) == []
    expect(page.get_by_label("Image")).to_have_value("Debian 12")  # the defaults are preselected
    expect(page.get_by_label("Plan")).to_have_value("Small")

    page.get_by_label("Image").select_option("Ubuntu 24.04")
    page.get_by_label("Plan").select_option("Large")
    page.get_by_label("New DevBench").fill("big")
    page.get_by_role("button", name="Create").click()
    card = bench_card(page, "big")
    expect(card.locator(".bench-status")).to_have_text("active", timeout=30_000)
    expect(card.locator(".bench-image")).to_have_text("Ubuntu 24.04")
    expect(card.locator(".bench-size")).to_have_text("4 vCPU, 8192 MiB, 40 GiB")
    bench = DevBench.objects.get(name="big")
    assert (bench.image.name, bench.plan.name, bench.vcpus) == ("Ubuntu 24.04", "Large", 4)

    card.locator(".bench-snapshots summary").click()
    expect(card.locator(".snapshot-list")).to_have_text("No snapshots yet.")
    card.get_by_label("Name of the new snapshot of big").fill("bad name")
    card.get_by_role("button", name="Take snapshot").click()
    expect(card.locator(".bench-error")).to_contain_text("Invalid snapshot name")
    card.get_by_label("Name of the new snapshot of big").fill("before")
    card.get_by_role("button", name="Take snapshot").click()
    # The card is rendered again when the job ends: open its snapshots again to see the new one.
    expect(card.locator(".bench-snapshots summary")).to_have_text("Snapshots (1)", timeout=30_000)
    card.locator(".bench-snapshots summary").click()
    expect(card.locator(".snapshot-list li[data-snapshot='before'] code")).to_have_text("before")
    ui.screenshots_light_and_dark(page, "dashboard-snapshots")

    card.get_by_role("button", name="Restore snapshot before").click()
    expect(card.locator(".bench-status")).to_have_text("inactive", timeout=30_000)
    expect(card.locator(".bench-log")).to_contain_text("Snapshot before of alice_big restored")
    # The card is drawn again when the restore's job ends, closing its details: open them until
    # the button is there.
    delete = card.get_by_role("button", name="Delete snapshot before")
    for _ in range(5):
        card.locator(".bench-snapshots").evaluate("details => { details.open = true; }")
        try:
            delete.click(timeout=5_000)
            break
        except PlaywrightTimeoutError:
            continue
    else:
        pytest.fail("the Delete snapshot button never showed")
    expect(card.locator(".bench-snapshots summary")).to_have_text("Snapshots", timeout=30_000)
    assert list(Job.objects.filter(bench=bench).order_by("pk").values_list("command", "state")) == [
        ("create", "succeeded"), ("snapshot", "succeeded"), ("restore", "succeeded"),
        ("delete-snapshot", "succeeded"),
    ]

"""The dashboard in a real browser: Playwright drives Debian's Chromium (/usr/bin/chromium,
headless, no browser download) against a live server with a real Celery worker. A user logs in,
uploads ML-100k, launches a run, watches it finish, opens its detail page, launches a second run
from the first, and compares the two. Each step saves a screenshot under test-artifacts/browser/;
no page may log a console error or throw."""

import os
import re
from pathlib import Path

import pytest

from tests.factories import ROOT, ml100k_files, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]
CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(os.environ.get("BROWSER_ARTIFACTS", ROOT / "test-artifacts" / "browser"))
RUN_TIMEOUT_MS = 600_000


@pytest.fixture
def browser_page(live_server, settings, monkeypatch):
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make browser-tools)")
    from playwright.sync_api import sync_playwright
    # The live server speaks plain http; secure-only cookies would never come back from Chromium.
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    # Playwright's sync API runs an event loop in this thread; the ORM calls pytest-django makes at
    # teardown are still synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SHOTS.mkdir(parents=True, exist_ok=True)
    problems = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=live_server.url)
        page = context.new_page()
        page.on("console", lambda message: problems.append(f"console {message.type}: {message.text} "
                                                           f"({page.url})") if message.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(f"page error: {error} ({page.url})"))
        page.on("response", lambda response: problems.append(f"HTTP {response.status}: {response.url}")
                if response.status >= 500 else None)
        page.problems = problems
        yield page
        context.close()
        browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def wait_for_status(page, worker, status: str) -> None:
    """Until the run page (which follows the run by itself) shows `status`; Playwright's own wait
    between checks keeps the page's events flowing."""
    selector = f'#run-status [data-status]:text-is("{status}")'

    def timed_out() -> str:
        shot(page, "timeout")
        return (f"{page.url} never showed {status!r}; the page shows:\n{page.inner_text('main')[:1500]}"
                f"\nworker log:\n{worker.log.read_text(errors='replace')[-3000:]}")
    wait_until(lambda: page.locator(selector).count() > 0, RUN_TIMEOUT_MS / 1000, 0.5, timed_out,
               sleep=lambda seconds: page.wait_for_timeout(seconds * 1000))


def test_log_in_upload_launch_watch_inspect_and_compare_in_chromium(worker, browser_page, django_user_model):
    page = browser_page
    django_user_model.objects.create_user("carol", password="carol-password-123")

    # 1. Logging in: anonymous visitors land on the login page.
    page.goto("/runs/")
    assert "/accounts/login/" in page.url
    page.get_by_label("Username").fill("carol")
    page.get_by_label("Password").fill("carol-password-123")
    shot(page, "01-login")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/runs/$"))

    # 2. Uploading ML-100k as several files in one input: a broken ratings file first (the worker's
    # reader error shows on the dataset page), then the real one (the page follows the preparation).
    data_file, item_file = ml100k_files()
    page.goto("/datasets/upload/")
    page.get_by_label("Name").fill("broken")
    page.set_input_files("#id_files", files=[{"name": "u.data", "mimeType": "text/plain", "buffer": b"196\t242\t3\n"},
                                             {"name": "u.item", "mimeType": "text/plain",
                                              "buffer": item_file.read_bytes()}])
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url(re.compile(r"/datasets/\d+/$"), timeout=120_000)
    error = page.wait_for_selector(".error pre", timeout=120_000)
    assert "u.data line 1" in error.inner_text()
    shot(page, "02-upload-error")
    page.goto("/datasets/upload/")
    page.get_by_label("Name").fill("ml-100k")
    page.set_input_files("#id_files", [str(data_file), str(item_file)])
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url(re.compile(r"/datasets/\d+/$"), timeout=120_000)
    page.wait_for_selector(".tile", timeout=120_000)
    assert page.locator(".tile", has_text="users").first.inner_text().startswith("943")
    shot(page, "03-dataset")

    # 3. Launching a run from the form.
    page.get_by_role("link", name="New run on it").click()
    page.get_by_label("Name", exact=True).fill("sasrec semantic")
    page.get_by_label("Tags").fill("browser")
    page.get_by_label("epochs", exact=True).fill("1")
    page.get_by_label("hidden", exact=True).fill("32")
    page.get_by_label("lam", exact=True).fill("0.5")
    shot(page, "04-new-run")
    page.get_by_role("button", name="Launch run").click()
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    first = page.url

    # 4. Watching it finish: the page follows the run by itself.
    wait_for_status(page, worker, "succeeded")
    page.wait_for_selector("table.metrics")
    shot(page, "05-run-detail")
    body = page.inner_text("main")
    assert "Student, distilled" in body and "Distilled vs baseline" in body
    assert re.search(r"top-20 overlap on test: baseline student \d+%, distilled student \d+%", body)
    assert page.locator("a[download]").count() >= 3
    assert page.evaluate("Chart.getChart('chart-ndcg').data.datasets.length") >= 2

    # 5. A second run from the first, with one option changed.
    page.get_by_role("link", name="Run again with changes").click()
    assert page.get_by_label("lam", exact=True).input_value() == "0.5"
    page.get_by_label("Name", exact=True).fill("sasrec semantic lam 0.3")
    page.get_by_label("lam", exact=True).fill("0.3")
    page.get_by_role("button", name="Launch run").click()
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    wait_for_status(page, worker, "succeeded")

    # 6. Comparing the two from the runs list.
    page.goto("/runs/")
    shot(page, "06-runs")
    boxes = page.locator("input[name=ids]")
    assert boxes.count() == 2
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.get_by_role("button", name="Compare selected").click()
    page.wait_for_url(re.compile(r"/runs/compare/\?ids=\d+,\d+"))
    page.get_by_label("Differences only").check()
    visible = [row.inner_text().split("\t")[0] for row in page.locator("#config-diff tbody tr").all() if row.is_visible()]
    assert visible == ["lam"], visible
    shot(page, "07-compare")

    # 7. The same pages on a phone: nothing wider than the screen but the tables' own scrollers.
    page.set_viewport_size({"width": 390, "height": 844})
    for url in (first, "/runs/", "/", "/datasets/"):
        page.goto(url)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), url
    page.goto(first)
    shot(page, "08-phone-run-detail")

    assert page.problems == []


def test_the_compare_page_holds_five_runs_at_1280_px(browser_page, django_user_model):
    from tests.factories import finished_run, ready_dataset
    page = browser_page
    dave = django_user_model.objects.create_user("dave", password="dave-password-123")
    dataset = ready_dataset(dave)
    runs = [finished_run(dave, dataset, name=f"a long descriptive run name number {i}", lam=0.1 * i)
            for i in range(1, 6)]
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("dave")
    page.get_by_label("Password").fill("dave-password-123")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/$"))
    page.goto("/runs/compare/?ids=" + ",".join(str(r.pk) for r in runs))
    shot(page, "09-compare-five-runs")
    table = page.locator("table.compare")
    # every metric name on one line, every run's column inside the page's 1280 px
    heights = table.locator("tbody th[scope=row]").evaluate_all("cells => cells.map(c => c.getBoundingClientRect().height)")
    assert max(heights) < 2 * min(heights), heights
    right = table.locator("thead th").last.evaluate("th => th.getBoundingClientRect().right")
    assert right <= 1280, right
    # the lambda axis of the parallel-coordinates chart is numeric: no "auto" category
    axes = page.evaluate("JSON.parse(document.getElementById('chart-data').textContent).parallel.axes")
    lam = next(axis for axis in axes if axis["name"] == "lam")
    assert [float(label) for label in lam["labels"]] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    assert page.problems == []

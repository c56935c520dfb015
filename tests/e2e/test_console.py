"""The web console (console/, served by Envoy) in a real browser against the
real mesh: sign-in, create, live progress, images and a video, cancel, field
errors, error words, history pages, a dropped watch and a stack restart,
what the page may load and where the key goes. One mesh, one Chromium
(tests/browser.py), one pytest worker (the xdist group)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Page, Request, expect

from leo_mesh import envoy_console
from leo_mesh.scheduling import Priority
from tests.browser import ARTIFACTS
from tests.clients import json_client, wait_for

ENV = {
    "MOCK_AI_MIN_DELAY_S": "0.2",
    "MOCK_AI_MAX_DELAY_S": "0.4",
    "MOCK_AI_VIDEO_FRAMES": "6",
    "MOCK_AI_VIDEO_FPS": "6",
    # A generation whose AI is away is tried again soon, and long enough.
    "DISPATCH_BACKOFF_BASE_S": "0.2",
    "DISPATCH_BACKOFF_CAP_S": "1",
    "DISPATCH_MAX_ATTEMPTS": "50",
    "DISPATCH_RPC_TIMEOUT_S": "2",
    "MAX_PENDING_PER_OWNER": "4",
    "ENVOY_RATE_LIMIT_PER_KEY_RPS": "1000",
    "ENVOY_RATE_LIMIT_PER_KEY_BURST": "2000",
}
# Where the README's screenshot comes from: LEO_CONSOLE_SCREENSHOT=docs/console.png
# (make console-screenshot) makes it again.
README_SCREENSHOT = os.environ.get("LEO_CONSOLE_SCREENSHOT")
XSS = "<img src=x onerror=alert(1)>"
TIMEOUT_MS = 20_000
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def mesh(make_mesh):
    return make_mesh(env=ENV)


@pytest.fixture(scope="module")
def console(mesh) -> str:
    return f"{mesh.envoy_url}/console/"


@pytest.fixture(scope="module")
def seen() -> list[Request]:
    """Every request any of the module's pages made (for where the key went)."""
    return []


@pytest.fixture(scope="module")
def dialogs() -> list:
    """Every alert, confirm or prompt a page opened (the console opens none)."""
    return []


@pytest.fixture
def new_page(browser_pages, seen, dialogs):
    def make(**options) -> Page:
        page = browser_pages(**options)
        page.set_default_timeout(TIMEOUT_MS)
        page.on("request", lambda request: seen.append(request))
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        return page

    return make


def new_key(mesh, request, *, max_priority: Priority = Priority.NORMAL) -> str:
    """A key of an owner of the test's own (made in a thread of its own:
    Playwright's event loop runs in this one, and asyncio.run refuses it)."""
    owner = re.sub(r"\W+", "-", request.node.name)[:60]
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(mesh.create_api_key, owner, max_priority=max_priority).result()


@pytest.fixture
def key(mesh, request) -> str:
    """A key with the default tier (up to NORMAL priority)."""
    return new_key(mesh, request)


def sign_in(page: Page, console: str, key: str) -> Page:
    page.goto(console)
    page.get_by_label("API key").fill(key)
    page.get_by_label("API key").press("Enter")
    expect(page.get_by_role("heading", name="Create")).to_be_visible()
    return page


@pytest.fixture
def signed_in(new_page, console, key) -> Page:
    return sign_in(new_page(viewport={"width": 1280, "height": 900}), console, key)


def choose_size(page: Page, width: int | str, height: int | str) -> None:
    page.get_by_label("Size").select_option("custom")
    page.get_by_label("Width (pixels)").fill(str(width))
    page.get_by_label("Height (pixels)").fill(str(height))


def generate(page: Page, prompt: str, *, width: int = 160, height: int = 120, video: bool = False) -> None:
    page.get_by_label("Prompt", exact=True).fill(prompt)
    choose_size(page, width, height)
    if video:
        page.get_by_label("Video").check()
    page.get_by_role("button", name="Generate").click()


@contextlib.contextmanager
def ai_paused(mesh) -> Iterator[None]:
    """The mock AI frozen (SIGSTOP): what is created meanwhile stays pending."""
    group = mesh.mock_ai.proc.pid
    os.killpg(group, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(group, signal.SIGCONT)


def result(page: Page):
    return page.locator("#create-result")


def wait_status(page: Page, status: str, panel: str = "#create-result") -> None:
    """Until the panel's status line says `status` (checked every 50 ms:
    expect() settles into polling once a second, and a generation takes less)."""
    page.wait_for_function(
        "([panel, status]) => document.querySelector(`${panel} .status`)?.textContent === status",
        arg=[panel, status],
        polling=50,
    )


def record_states(page: Page) -> None:
    """From now on, window.states lists each status line and running-time
    line the result panel shows (states may pass faster than a poll)."""
    page.evaluate(
        """() => {
            window.states = [];
            const box = document.querySelector('#create-result');
            const note = () => {
                const status = box.querySelector('.status');
                const line = [status && status.textContent, !!box.querySelector('progress'),
                              (box.querySelector('.elapsed') || {}).textContent || ''];
                if (JSON.stringify(line) !== JSON.stringify(window.states.at(-1))) window.states.push(line);
            };
            new MutationObserver(note).observe(box, { subtree: true, childList: true, characterData: true });
        }"""
    )


def natural_sizes(page: Page, selector: str) -> list[list[int]]:
    return page.eval_on_selector_all(
        selector, "images => images.map(i => i.complete ? [i.naturalWidth, i.naturalHeight] : null)"
    )


# --- what the page loads --------------------------------------------------------------


def test_first_load_is_small_same_origin_and_under_a_strict_csp(new_page, console, mesh):
    page = new_page()
    requests: list[Request] = []
    page.on("requestfinished", lambda request: requests.append(request))
    response = page.goto(console)
    page.wait_for_load_state("networkidle")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    assert response is not None and response.status == 200
    assert response.headers["content-security-policy"] == envoy_console.CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    origin = urlsplit(mesh.envoy_url)
    assert {(urlsplit(r.url).scheme, urlsplit(r.url).netloc) for r in requests} == {(origin.scheme, origin.netloc)}
    paths = {urlsplit(r.url).path for r in requests}
    assert {"/console/", "/console/console.css", "/console/js/main.js"} <= paths
    # Every file came gzipped; what crossed the wire, headers included.
    transferred = 0
    for r in requests:
        sizes = r.sizes()
        transferred += sizes["responseBodySize"] + sizes["responseHeadersSize"]
        if r.url.endswith((".js", ".css", "/console/")):
            assert r.response().headers.get("content-encoding") == "gzip", r.url
    raw = sum(p.stat().st_size for p in envoy_console.CONSOLE_DIR.rglob("*") if p.is_file())
    report = {"requests": len(requests), "transferred_bytes": transferred, "uncompressed_file_bytes": raw}
    (ARTIFACTS / "console").mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "console" / "first-load.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nconsole first load: {report}")
    # Trusted Types are enforced: markup from a string cannot reach the page.
    refused = page.evaluate(
        "() => { try { document.body.innerHTML = '<b>x</b>'; return null } catch (e) { return e.name } }"
    )
    assert refused == "TypeError"


def test_envoy_answers_the_console_paths(mesh, console):
    with httpx.Client(base_url=mesh.envoy_url, timeout=10) as http:
        root = http.get("/")
        assert (root.status_code, root.headers["location"]) == (302, f"{mesh.envoy_url}/console/")
        assert http.get("/console").headers["location"] == f"{mesh.envoy_url}/console/"
        head = http.head("/console/js/api.js")
        assert head.status_code == 200 and head.headers["content-type"] == "text/javascript; charset=utf-8"
        refused = http.post("/console/", content=b"{}")
        assert (refused.status_code, refused.headers["allow"]) == (405, "GET, HEAD")
        assert refused.json()["details"][-1]["reason"] == "METHOD_NOT_ALLOWED"
        missing = http.get("/console/nothing.js")
        assert missing.status_code == 404 and missing.json()["details"][-1]["reason"] == "ROUTE_NOT_FOUND"
        # Uncompressed for a client that does not ask for gzip.
        plain = http.get("/console/", headers={"accept-encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert plain.content == (envoy_console.CONSOLE_DIR / "index.html").read_bytes()


# --- signing in -------------------------------------------------------------------------


def test_a_wrong_key_is_refused_in_words(new_page, console):
    page = new_page()
    page.goto(console)
    page.get_by_label("API key").fill("leo_not-a-key-at-all")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#api-key-error")).to_contain_text("This API key was not accepted")
    expect(page.get_by_label("API key")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("() => sessionStorage.length + localStorage.length") == 0


def test_signing_in_and_out_with_the_keyboard(new_page, console, key):
    page = new_page()
    page.goto(console)
    expect(page.get_by_label("API key")).to_be_focused()
    page.keyboard.type(key)
    page.keyboard.press("Tab")
    expect(page.get_by_label(re.compile("Stay signed in"))).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Sign in")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Create")).to_be_focused()
    # The prompt, then Ctrl+Enter, creates.
    page.keyboard.press("Tab")
    expect(page.get_by_label("Prompt", exact=True)).to_be_focused()
    page.keyboard.type("typed, not clicked")
    page.keyboard.press("Control+Enter")
    expect(result(page).locator(".prompt")).to_have_text("typed, not clicked")
    # Kept for this tab only, and a reload keeps the person signed in.
    assert page.evaluate("() => localStorage.length") == 0
    page.reload()
    expect(page.get_by_role("heading", name="Create")).to_be_visible()
    page.get_by_role("button", name="Sign out").press("Enter")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("() => sessionStorage.length") == 0


# --- create, progress, results ---------------------------------------------------------


def test_create_shows_progress_then_images_of_the_requested_size(signed_in, key, mesh):
    page = signed_in
    record_states(page)
    generate(page, "a lighthouse at dusk, oil painting", width=320, height=240)
    view = result(page)
    wait_status(page, "Complete")
    states = page.evaluate("() => window.states")
    pending = [s for s in states if s[0].startswith("Pending")]
    assert pending and all(bar for _, bar, _ in pending), states
    assert any(re.fullmatch(r"(Waiting|Running) for \d+:\d\d", elapsed) for _, _, elapsed in pending), states
    images = view.locator("img.image")
    expect(images).to_have_count(2)
    wait_for(lambda: natural_sizes(page, "#create-result img.image") == [[320, 240]] * 2, what="images loaded")
    expect(view.locator(".elapsed")).to_have_text(re.compile(r"Took \d+\.\d s"))
    expect(view.locator(".facts")).to_contain_text("320 \N{MULTIPLICATION SIGN} 240")
    # Each downloadable from its signed link, without a key.
    links = view.get_by_role("link", name=re.compile("Download image"))
    expect(links).to_have_count(2)
    href = links.first.get_attribute("href")
    assert links.first.get_attribute("download")
    with httpx.Client(base_url=mesh.envoy_url, timeout=10) as http:
        download = http.get(href)
    assert download.status_code == 200 and download.headers["content-type"] == "image/png"
    if README_SCREENSHOT:
        page.evaluate("() => scrollTo(0, 0)")
        page.screenshot(path=Path(README_SCREENSHOT))


def test_a_video_plays_and_pauses(signed_in):
    page = signed_in
    generate(page, "waves rolling in", width=128, height=96, video=True)
    view = result(page)
    wait_status(page, "Complete")
    wait_for(lambda: natural_sizes(page, "#create-result img.video") == [[128, 96]], what="the video loaded")
    expect(view.locator("figcaption")).to_contain_text("6 frames")
    # It plays: what the page shows of it changes.
    video = view.locator("img.video")
    frames = {video.screenshot(animations="allow")}
    wait_for(lambda: frames.add(video.screenshot(animations="allow")) or len(frames) > 1, what="a second frame")
    view.get_by_role("button", name="Pause video 1").click()
    expect(view.locator("img.video")).to_be_hidden()
    expect(view.get_by_role("img", name=re.compile(r"\(paused\)"))).to_be_visible()
    expect(view.get_by_role("button", name="Play video 1")).to_have_attribute("aria-pressed", "true")


def test_cancel_while_pending(signed_in, mesh, key):
    page = signed_in
    with ai_paused(mesh):
        generate(page, "never finished")
        view = result(page)
        expect(view.locator(".status")).to_have_text(re.compile(r"^Pending( · (Queued|Starting))?$"))
        expect(view.locator(".connection")).to_have_text("Live")
        view.get_by_role("button", name="Cancel").click()
        expect(view.locator(".status")).to_have_text("Cancelled")
        expect(view.get_by_role("button", name="Cancel")).to_have_count(0)
    with json_client(mesh, key) as http:
        [generation] = http.get("/v1/generations").json()["generations"]
    assert generation["status"] == "STATUS_CANCELLED"


def test_a_bad_size_is_shown_beside_the_field(signed_in, key, mesh):
    page = signed_in
    generate(page, "a fox", width=1001, height=120)
    error = page.locator("#width-error")
    expect(error).to_contain_text("multiple of 8")
    expect(page.get_by_label("Width (pixels)")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Width (pixels)")).to_be_focused()
    expect(page.locator("#height-error")).to_be_hidden()
    expect(page.locator("#create-error")).to_contain_text("fields need a change")
    with json_client(mesh, key) as http:
        assert http.get("/v1/generations").json()["generations"] == []


def test_a_key_allowed_high_creates_with_high_priority(new_page, console, mesh, request):
    key = new_key(mesh, request, max_priority=Priority.HIGH)
    page = sign_in(new_page(viewport={"width": 1280, "height": 900}), console, key)
    page.get_by_label("Priority", exact=True).select_option(label="High")
    generate(page, "ahead of the queue")
    wait_status(page, "Complete")
    page.get_by_role("link", name="History").click()
    page.get_by_role("link", name="ahead of the queue").click()
    expect(page.get_by_role("heading", name="Generation")).to_be_visible()
    expect(page.locator("#detail-body .facts dt:text-is('Priority') + dd")).to_have_text("High")
    with json_client(mesh, key) as http:
        [generation] = http.get("/v1/generations").json()["generations"]
    assert generation["priority"] == "PRIORITY_HIGH"


def test_a_priority_above_the_key_is_shown_beside_the_field(signed_in, key, mesh):
    page = signed_in
    control = page.get_by_label("Priority", exact=True)
    control.select_option(label="High")
    generate(page, "a fox in a hurry")
    expect(page.locator("#priority-error")).to_contain_text("at most PRIORITY_NORMAL")
    expect(control).to_have_attribute("aria-invalid", "true")
    expect(control).to_be_focused()
    expect(page.locator("#create-error")).to_contain_text("fields need a change")
    with json_client(mesh, key) as http:
        assert http.get("/v1/generations").json()["generations"] == []


def test_quota_is_said_in_words(signed_in, key, mesh):
    page = signed_in
    with ai_paused(mesh), json_client(mesh, key) as http:
        for i in range(int(ENV["MAX_PENDING_PER_OWNER"])):
            assert http.post("/v1/generations", json={"prompt": f"waiting {i}"}).status_code == 200
        generate(page, "one too many")
        expect(page.locator("#create-error")).to_contain_text("Quota reached")


def test_an_xss_prompt_stays_text(signed_in, dialogs):
    page = signed_in
    generate(page, XSS)
    view = result(page)
    expect(view.locator(".prompt")).to_have_text(XSS)
    wait_status(page, "Complete")
    page.get_by_role("link", name="History").click()
    expect(page.get_by_role("link", name=XSS)).to_be_visible()
    assert page.locator("img[src=x]").count() == 0
    page.get_by_role("link", name=XSS).click()
    expect(page.locator("#detail-body .prompt")).to_have_text(XSS)
    assert page.locator("img[src=x]").count() == 0
    assert dialogs == []


# --- history --------------------------------------------------------------------------


def test_history_pages_filters_and_opens_a_generation(signed_in, key, mesh):
    page = signed_in
    limit = int(ENV["MAX_PENDING_PER_OWNER"])
    prompts = [f"history {i}" for i in range(7)]
    with json_client(mesh, key) as http:
        for batch in (prompts[:limit], prompts[limit:]):
            ids = [http.post("/v1/generations", json={"prompt": p, "width": 64, "height": 64}).json() for p in batch]
            ids = [created["generation"]["generationId"] for created in ids]
            wait_for(
                lambda ids=ids: all(
                    http.get(f"/v1/generations/{i}").json()["generation"]["status"] != "STATUS_PENDING" for i in ids
                ),
                what="the batch to finish",
            )
    page.get_by_role("link", name="History").click()
    page.get_by_label("Per page").select_option("5")
    cards = page.locator("#history-list .card .prompt")
    expect(cards).to_have_text([f"history {i}" for i in (6, 5, 4, 3, 2)])
    page.get_by_role("button", name="Older").click()
    expect(cards).to_have_text(["history 1", "history 0"])
    expect(page.get_by_role("button", name="Older")).to_be_disabled()
    page.get_by_role("button", name="Newer").click()
    expect(cards).to_have_count(5)
    expect(page.get_by_role("button", name="Newer")).to_be_disabled()
    # The skip link moves the focus to the content and leaves the view alone.
    page.get_by_role("link", name="Skip to content").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#main")).to_be_focused()
    expect(page.get_by_role("heading", name="History")).to_be_visible()

    with page.expect_request(lambda r: "status=STATUS_COMPLETE" in r.url):
        page.get_by_label("Status").select_option("STATUS_COMPLETE")
    expect(page.locator("#history-list .status")).to_have_text(["Complete"] * 5)

    page.get_by_role("link", name="history 6").click()
    detail = page.locator("#detail-body")
    expect(page.get_by_role("heading", name="Generation")).to_be_visible()
    expect(detail.locator(".prompt")).to_have_text("history 6")
    for fact in ("Stable Diffusion XL", "64 \N{MULTIPLICATION SIGN} 64", "Attempts", "Created", "Finished"):
        expect(detail.locator(".facts")).to_contain_text(fact)
    expect(detail.locator("img.image")).to_have_count(2)
    page.go_back()
    expect(page.get_by_role("heading", name="History")).to_be_visible()


# --- through failures --------------------------------------------------------------------


def watch_requests(seen: list[Request], since: int) -> list[Request]:
    return [r for r in seen[since:] if r.url.endswith(":watch")]


def test_a_dropped_watch_reconnects_and_catches_up(signed_in, mesh, seen):
    page = signed_in
    start = len(seen)
    with ai_paused(mesh):
        generate(page, "through a dropped connection")
        view = result(page)
        expect(view.locator(".connection")).to_have_text("Live")
        mesh.envoy.stop()
        expect(view.locator(".connection")).to_contain_text("reconnecting")
        mesh.start_process(mesh.envoy)
        expect(view.locator(".connection")).to_have_text("Live")
    wait_status(page, "Complete")
    expect(view.locator("img.image")).to_have_count(2)
    assert len(watch_requests(seen, start)) >= 2


def test_the_console_keeps_working_through_a_stack_restart(signed_in, mesh, seen):
    page = signed_in
    mesh.mock_ai.stop()  # the generation stays pending through the restart
    start = len(seen)
    generate(page, "through a restart")
    view = result(page)
    expect(view.locator(".connection")).to_have_text("Live")
    mesh.stop()
    expect(view.locator(".connection")).to_contain_text("reconnecting")
    mesh.start()
    wait_status(page, "Complete")
    expect(view.locator("img.image")).to_have_count(2)
    assert len(watch_requests(seen, start)) >= 2
    # And the rest of the console works on the new processes.
    page.get_by_role("link", name="History").click()
    expect(page.get_by_role("link", name="through a restart")).to_be_visible()


# --- the reader and the words, as units in the page ---------------------------------------


def test_the_event_stream_parser_reads_any_split_and_line_ending(new_page, console):
    page = new_page()
    page.goto(console)
    outcome = page.evaluate(
        """async () => {
            const { EventStreamParser } = await import('./js/sse.js');
            const stream = '\\ufeff: hello\\r\\nretry: 2500\\r\\nid: 1\\r\\ndata: {"a":1}\\r\\n\\r\\n'
                + 'data: two\\rdata: lines\\r\\rid\\nevent: note\\ndata:x\\n\\nid: 3\\0\\ndata\\n\\n';
            const expected = JSON.stringify([
                { type: 'message', data: '{"a":1}', lastEventId: '1' },
                { type: 'message', data: 'two\\nlines', lastEventId: '1' },
                { type: 'note', data: 'x', lastEventId: '' },
                { type: 'message', data: '', lastEventId: '' },
            ]);
            const bad = [];
            for (let i = 0; i <= stream.length; i++) {
                for (let j = i; j <= stream.length; j++) {
                    const parser = new EventStreamParser();
                    const parts = [stream.slice(0, i), stream.slice(i, j), stream.slice(j)];
                    const events = parts.flatMap(p => parser.push(p));
                    if (JSON.stringify(events) !== expected || parser.retry !== 2500) bad.push([i, j]);
                }
            }
            return { bad: bad.slice(0, 5), count: bad.length };
        }"""
    )
    assert outcome == {"bad": [], "count": 0}


def test_the_watch_reconnects_with_last_event_id_and_ends_at_204(new_page, console):
    """The reader against a scripted server (the stream's id: and retry:
    lines, a drop mid-stream, then 204): what it sends and what it does."""
    page = new_page()
    page.goto(console)
    outcome = page.evaluate(
        """async () => {
            const { Watch } = await import('./js/watch.js');
            const pending = (p) => `data: {"generation":{"status":"STATUS_PENDING","progress":${p}}}\\n\\n`;
            const answers = [
                () => new Response(`retry: 10\\nid: 7\\n${pending(10)}id: 8\\n${pending(20)}`, { status: 200 }),
                () => { throw new TypeError('network down'); },
                () => new Response(`id: 9\\n${pending(30)}`, { status: 200 }),
                () => new Response(null, { status: 204 }),
            ];
            const sent = [];
            const seen = [];
            const states = [];
            const ended = await new Promise((resolve) => {
                new Watch({
                    url: '/v1/generations/x:watch',
                    headers: (extra) => ({ authorization: 'Bearer k', ...extra }),
                    onGeneration: (g) => seen.push(g.progress),
                    onConnection: (state) => states.push(state),
                    onEnd: (outcome) => resolve(outcome),
                    fetch: async (url, init) => {
                        sent.push(init.headers['last-event-id'] || null);
                        return answers[sent.length - 1]();
                    },
                }).start();
            });
            return { ended, sent, seen, retried: states.filter(s => s === 'retrying').length };
        }"""
    )
    assert outcome == {"ended": "done", "sent": [None, "8", "8", "9"], "seen": [10, 20, 30], "retried": 3}


def test_errors_are_said_in_words(new_page, console):
    page = new_page()
    page.goto(console)
    said = page.evaluate(
        """async () => {
            const { ApiError, explain } = await import('./js/api.js');
            const info = (reason) => ({ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason });
            const error = (status, reason, extra = [], retryAfter = null) =>
                new ApiError(status, { code: 8, message: 'm', details: [...extra, info(reason)] }, retryAfter);
            const retry = (delay) => [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: delay }];
            return {
                rate: explain(error(429, 'RATE_LIMITED', retry('1s'))),
                busy: explain(error(503, 'SERVER_BUSY', retry('30s'))),
                header: explain(error(429, 'RATE_LIMITED', [], '2')),
                quota: explain(error(429, 'PENDING_LIMIT_REACHED')),
                down: explain(new ApiError(0)),
                other: explain(error(500, 'SOMETHING_NEW')),
            };
        }"""
    )
    assert said["rate"] == "Too many requests with this key just now. Try again in 1 second."
    assert said["busy"] == "The service is busy. Try again in 30 seconds."
    assert said["header"].endswith("Try again in 2 seconds.")
    assert said["quota"].startswith("Quota reached")
    assert said["down"].startswith("The service cannot be reached")
    assert said["other"] == "The service answered: m"


def test_fields_a_newer_api_adds_are_shown_when_present(new_page, console):
    page = new_page()
    page.goto(console)
    text = page.evaluate(
        """async () => {
            const { GenerationView } = await import('./js/generation.js');
            const box = document.createElement('div');
            document.body.append(box);
            const view = new GenerationView(box, { api: null, announce: () => {}, onSignedOut: () => {} });
            const soon = new Date(Date.now() + 60000).toISOString();
            view.show({
                generationId: 'g', status: 'STATUS_PENDING', prompt: 'p', createTime: new Date().toISOString(),
                phase: 'PHASE_QUEUED', queuePosition: 3, progress: 0, priority: 'PRIORITY_HIGH',
                estimatedStartTime: soon, estimatedCompleteTime: soon, attempts: 0,
            });
            const queued = box.innerText;
            view.show({ generationId: 'g', status: 'STATUS_PENDING', prompt: 'p', phase: 'PHASE_RUNNING',
                        progress: 40, startTime: new Date().toISOString(), createTime: new Date().toISOString() });
            const running = box.innerText;
            view.close();
            return { queued, running };
        }"""
    )
    for shown in ("Pending · Queued", "Position 3 in the queue", "Expected to start", "Expected to finish", "High"):
        assert shown in text["queued"], shown
    for shown in ("Pending · Running", "40 %", "Running for 0:0"):
        assert shown in text["running"], shown
    assert "Expected to start" not in text["running"]


# --- phones, motion, contrast --------------------------------------------------------------


PHONE = {"width": 360, "height": 740}
# What reaches past the screen's right edge (a phone widens the page to fit
# what overflows, so innerWidth alone would not tell).
OVERFLOWING = """(width) => [...document.querySelectorAll('body *')]
    .filter((e) => { const box = e.getBoundingClientRect(); return box.width && box.right > width + 0.5; })
    .map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className}`)"""


def test_a_phone_sized_screen_needs_no_sideways_scrolling(new_page, console, key):
    page = sign_in(new_page(viewport=PHONE, is_mobile=True, has_touch=True), console, key)
    generate(page, "wider than the phone", width=640, height=64)
    wait_status(page, "Complete")
    expect(result(page).locator("img.image").first).to_be_visible()
    assert page.evaluate(OVERFLOWING, PHONE["width"]) == []
    page.get_by_role("link", name="History").click()
    expect(page.get_by_role("link", name="wider than the phone")).to_be_visible()
    assert page.evaluate(OVERFLOWING, PHONE["width"]) == []
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]


def test_reduced_motion_starts_the_video_paused(new_page, console, key):
    page = sign_in(new_page(reduced_motion="reduce"), console, key)
    generate(page, "slow waves", width=64, height=64, video=True)
    view = result(page)
    wait_status(page, "Complete")
    expect(view.get_by_role("button", name="Play video 1")).to_have_attribute("aria-pressed", "true")
    expect(view.locator("img.video")).to_be_hidden()


def relative_luminance(rgb: tuple[float, ...]) -> float:
    def channel(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(foreground: tuple[float, ...], background: tuple[float, ...]) -> float:
    lighter, darker = sorted((relative_luminance(foreground), relative_luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


COLOURS = """(selectors) => selectors.map((selector) => {
    const element = document.querySelector(selector);
    const rgb = (text) => text.match(/[\\d.]+/g).map(Number);
    let back = element;
    while (back && rgb(getComputedStyle(back).backgroundColor)[3] === 0) back = back.parentElement;
    const background = getComputedStyle(back || document.body).backgroundColor;
    return [selector, rgb(getComputedStyle(element).color), rgb(background)];
})"""


SCHEMES = ("light", "dark")


def weak_contrast(page: Page, selectors: list[str]) -> list[tuple[str, float]]:
    weak = []
    for selector, colour, background in page.evaluate(COLOURS, selectors):
        ratio = contrast(tuple(colour), tuple(background))
        if ratio < 4.5:
            weak.append((selector, round(ratio, 2)))
    return weak


def weak_in_each_scheme(page: Page, selectors: list[str]) -> dict[str, list[tuple[str, float]]]:
    weak = {}
    for scheme in SCHEMES:
        page.emulate_media(color_scheme=scheme)
        # Buttons fade between colours: measure where they end.
        page.wait_for_function("() => document.getAnimations().every((a) => a.playState === 'finished')")
        weak[scheme] = weak_contrast(page, selectors)
    return weak


def test_text_contrast_is_at_least_4_5_to_1_in_both_colour_schemes(signed_in):
    page = signed_in
    generate(page, "contrast", width=63, height=64)
    expect(page.locator("#width-error")).to_be_visible()
    errors = weak_in_each_scheme(page, ["#width-error", "#create-error"])
    generate(page, "contrast", width=64, height=64)
    wait_status(page, "Complete")
    selectors = [
        "body", "label[for=prompt]", "#prompt-hint", "#generate", "#sign-out", ".bar nav a", "#key-hint",
        "#create-result .status", "#create-result .prompt", "#create-result .facts dt", "#create-result figcaption",
    ]  # fmt: skip
    others = weak_in_each_scheme(page, selectors)
    assert {scheme: errors[scheme] + others[scheme] for scheme in SCHEMES} == {scheme: [] for scheme in SCHEMES}


def test_every_control_has_a_label(signed_in):
    page = signed_in
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea, button')]
            .filter((c) => !(c.labels && c.labels.length) && !c.getAttribute('aria-label') && !c.textContent.trim())
            .map((c) => c.outerHTML)"""
    )
    assert unlabelled == []


# --- the key ---------------------------------------------------------------------------------


def test_the_key_goes_only_to_the_api_in_its_header(new_page, console, key, mesh, seen):
    """Over every request this module's pages made (this test's own
    sign-in and create included): never in a URL; only as the
    Authorization header, only to this origin's API; never stored beyond
    the tab; never in a log of the mesh."""
    page = sign_in(new_page(), console, key)
    generate(page, "where does the key go")
    wait_status(page, "Complete")
    expect(result(page).locator("img.image")).to_have_count(2)
    assert page.evaluate("() => localStorage.length") == 0

    origin = mesh.envoy_url
    keys_seen = {
        request.headers["authorization"].removeprefix("Bearer ")
        for request in seen
        if "authorization" in request.headers
    }
    assert key in keys_seen
    for request in seen:
        header = request.headers.get("authorization")
        path = urlsplit(request.url).path
        assert not any(k in request.url for k in keys_seen), request.url
        if header:
            assert request.url.startswith(f"{origin}/v1/generations"), request.url
            assert "/assets/" not in path and request.resource_type == "fetch", request.url
        else:
            assert not path.startswith("/v1/") or "/assets/" in path, request.url
    for log in mesh.run_dir.glob("*.log"):
        assert not any(k in log.read_text(errors="replace") for k in keys_seen), log.name

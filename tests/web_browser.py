#!/usr/bin/python3
"""Headless Chromium driven over the DevTools protocol (--remote-debugging-pipe: JSON
messages ending in NUL on fds 3 and 4), for tests/it_web.sh; nothing beyond Python's
standard library.

    web_browser.py URL LOG [--screenshot PNG] [--midshot PNG] [--stop FILE] [--seconds N]

opens URL in one tab and, every 0.25 s, writes one JSON line to LOG with what the page
shows (read from its DOM, as a person would see it): the running jobs' progress, the
finished jobs' rows, the top keys. When the file given with --stop exists (or after
--seconds), it saves a screenshot of the page to PNG and exits 0. --midshot saves one
when a running job first shows progress, and again when it first shows more than 30%
done (a fast job may be over before that). Exits 1 when Chromium
cannot be started or the page never loads."""
import base64, json, os, select, subprocess, sys, tempfile, time

READ_DOM = r"""
(() => {
  const num = v => (v === undefined || v === "" ? null : Number(v));
  return JSON.stringify({
    conn: document.getElementById("conn").textContent,
    updates: num(document.body.dataset.updated),
    running: [...document.querySelectorAll("#running-list .job")].map(j => ({
      id: j.id.replace(/^job-/, ""), progress: num(j.dataset.progress),
      lines: num(j.dataset.lines),
      shards: [...j.querySelectorAll(".shard")].map(s => num(s.dataset.progress))})),
    finished: [...document.querySelectorAll("#finished-list tr.job")].map(r => ({
      id: r.id.replace(/^job-/, ""), status: r.dataset.status,
      keys: r.querySelector(".keys").textContent, sum: r.querySelector(".sum").textContent,
      lines: r.querySelector(".lines").textContent,
      bad_lines: r.querySelector(".bad-lines").textContent,
      seconds: r.querySelector(".seconds").textContent,
      reason: r.querySelector(".reason").textContent,
      totals: (r.querySelector(".download a") || {}).href || null})),
    top_job: document.getElementById("top").dataset.job,
    injected: document.querySelectorAll("img, iframe, object, embed").length +
      (document.title === "Tally" ? 0 : 1),
    top: [...document.querySelectorAll("#top-list .top-row")].map(r =>
      [r.querySelector(".top-key").textContent, r.querySelector(".top-total").textContent]),
  });
})()
"""


class Chromium:
    def __init__(self, profile):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()

        def fds():
            # Through fresh copies: a pipe end already on 3 or 4 would keep its
            # close-on-exec flag through dup2 onto itself.
            read, write = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(read, 3)
            os.dup2(write, 4)

        binary = os.environ.get("CHROMIUM", "chromium")
        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-dev-shm-usage", "--remote-debugging-pipe",
             "--user-data-dir=" + profile, "--window-size=1280,1000", "about:blank"],
            preexec_fn=fds, close_fds=False, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(profile, "chromium.log"), "w"))
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buffer = b""
        self.next_id = 0
        self.session = None

    def call(self, method, params=None, timeout=30):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if self.session:
            msg["sessionId"] = self.session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + timeout
        while True:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self.next_id:
                    if "error" in reply:
                        raise RuntimeError("%s: %s" % (method, reply["error"]))
                    return reply["result"]
            if time.time() > deadline:
                raise TimeoutError(method)
            ready, _, _ = select.select([self.from_chrome], [], [], 1)
            if ready:
                data = os.read(self.from_chrome, 1 << 20)
                if not data:
                    raise RuntimeError("chromium closed its pipe")
                self.buffer += data

    def open(self, url):
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable")
        self.call("Page.navigate", {"url": url})

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            return None
        return result["result"].get("value")

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        with open(path, "wb") as out:
            out.write(base64.b64decode(data["data"]))

    def close(self):
        try:
            self.session = None
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main():
    args = sys.argv[1:]
    url, log = args[0], args[1]
    opts = dict(zip(args[2::2], args[3::2]))
    stop = opts.get("--stop")
    limit = time.time() + float(opts.get("--seconds", 120))
    profile = tempfile.mkdtemp(prefix="tally-web-chromium-")
    browser = Chromium(profile)
    status = 0
    midshot = opts.get("--midshot")
    midshot_taken = False
    try:
        browser.open(url)
        with open(log, "a") as out:
            print(json.dumps({"opened": url}), file=out, flush=True)
            while not (stop and os.path.exists(stop)) and time.time() < limit:
                value = browser.evaluate(READ_DOM)
                if value:
                    reading = json.loads(value)
                    reading["t"] = round(time.time(), 3)
                    print(json.dumps(reading), file=out, flush=True)
                    # The mid-job screenshot: at the first reading with progress, then
                    # again once past 30% (a fast job may end before it gets there).
                    progress = max([j["progress"] or 0 for j in reading["running"]] + [0])
                    if midshot and (progress > 0.3 or (progress > 0 and not midshot_taken)):
                        browser.screenshot(midshot)
                        midshot_taken = True
                        if progress > 0.3:
                            midshot = None
                time.sleep(0.25)
            value = browser.evaluate(READ_DOM)
            if value:
                print(json.dumps(json.loads(value)), file=out, flush=True)
        if "--screenshot" in opts:
            browser.screenshot(opts["--screenshot"])
    except Exception as error:
        print("web_browser.py: %s" % error, file=sys.stderr)
        status = 1
    finally:
        browser.close()
        subprocess.run(["rm", "-rf", profile])
    sys.exit(status)


if __name__ == "__main__":
    main()

"""The operator's web page and its input devices (robotrl ui)."""

# Debian's chromium as the tests, bench/ui_latency.py and scripts/ui_screenshot.py drive it through Playwright
# (nothing downloaded; the sandbox needs privileges CI containers lack, and there is no GPU).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]

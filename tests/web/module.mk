# tests/web/ — the dashboard (controller/web/) in a real browser: Debian's
# chromium, headless, driven by playwright-core (npm, pinned by
# tests/web/package-lock.json, installed by `make deps`), against a
# controller serving it over HTTPS, with a test edge on the real gRPC path.
TEST_BINS += $(BUILD)/tests/ctl/edge_client
TESTS     += tests/web/dashboard.sh

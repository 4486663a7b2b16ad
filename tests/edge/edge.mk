# tests/edge/edge.mk — the multi-site namespace tests (issue 9) and their
# helper.  They share tests/edge/sites_lib.sh with `make demo`.
EDGE_CT_FLUSH := $(BUILD)/tests/edge/ct_flush
$(BUILD)/tests/edge/ct_flush.o: EXTRA_CFLAGS += $(CFLAGS_NL)
$(EDGE_CT_FLUSH): $(BUILD)/tests/edge/ct_flush.o
	$(call link,$@,$^,$(LIBS_NL))
TEST_BINS += $(EDGE_CT_FLUSH)

# The multi-site tests of issue 9, on the lab of `make demo`: three sites
# end to end, a fourth site added and removed through REST, NAT
# (conntrack flush, and a mapping moved to a new public port, which the
# agents follow), and make demo / demo-down themselves are in
# `make test`.  Multi-link failover failed 1 run in 14 here with no
# captured cause, so it runs only in `make test-sites` (all five) until it
# is understood.
EDGE_SITES_TESTS := tests/edge/three_sites.sh tests/edge/site_add.sh \
	tests/edge/nat.sh tests/edge/demo_updown.sh
TESTS += $(EDGE_SITES_TESTS)
.PHONY: test-sites
test-sites: deps-checked build-all $(TEST_BINS)
	@BUILD=$(BUILD) sh tests/run $(EDGE_SITES_TESTS) tests/edge/failover.sh

# tests/edge/edge.mk — the multi-site namespace tests (issue 9) and their
# helper.  They share tests/edge/sites_lib.sh with `make demo`.
EDGE_CT_FLUSH := $(BUILD)/tests/edge/ct_flush
$(BUILD)/tests/edge/ct_flush.o: EXTRA_CFLAGS += $(CFLAGS_NL)
$(EDGE_CT_FLUSH): $(BUILD)/tests/edge/ct_flush.o
	$(call link,$@,$^,$(LIBS_NL))
TEST_BINS += $(EDGE_CT_FLUSH)

# The multi-site tests of issue 9, on the lab of `make demo`: three sites
# end to end, a fourth site added and removed through REST, multi-link
# failover, NAT (conntrack flush; NAT_PORT_CHANGE=1 for a moved mapping),
# and make demo / demo-down themselves.  `make test-sites` runs them.
# They are not in `make test` yet: with meshwan-edge 8704347 a three-site
# mesh comes up in only about half the runs, on two agent bugs written
# down in /work/coord/demo-findings.md (1: zebra misses a tunnel's /31;
# 2: a rekey install-inbound that arrives before the peer's certificate
# fails and is never retried).  Add $(EDGE_SITES_TESTS) to TESTS once
# those are fixed.
EDGE_SITES_TESTS := tests/edge/three_sites.sh tests/edge/site_add.sh \
	tests/edge/failover.sh tests/edge/nat.sh tests/edge/demo_updown.sh
.PHONY: test-sites
test-sites: deps-checked build-all $(TEST_BINS)
	@BUILD=$(BUILD) sh tests/run $(EDGE_SITES_TESTS)

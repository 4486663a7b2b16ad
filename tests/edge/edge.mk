# tests/edge/edge.mk — the multi-site namespace tests (issue 9) and their
# helper.  They share tests/edge/sites_lib.sh with `make demo`.
EDGE_CT_FLUSH := $(BUILD)/tests/edge/ct_flush
$(EDGE_CT_FLUSH): $(BUILD)/tests/edge/ct_flush.o
	$(call link,$@,$^,)
TEST_BINS += $(EDGE_CT_FLUSH)

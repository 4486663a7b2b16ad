# tests/ — shared test helpers.  Each part registers its own tests in its
# module.mk (TESTS for what `make test` runs, TEST_BINS for what it builds).
$(BUILD)/tests/unit/%.o: EXTRA_CFLAGS += -Wno-missing-prototypes

-include tests/lab/module.mk
-include tests/web/module.mk

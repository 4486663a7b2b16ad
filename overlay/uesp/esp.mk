# overlay/uesp/esp.mk — the ESP crypto core of the userspace backend:
# esp.c (RFC 4303/4106 seal and open) and replay.c (anti-replay window).
# Users link $(ESP_OBJS) with $(LIBS_CRYPTO).
ESP_SRCS := overlay/uesp/esp.c overlay/uesp/replay.c
ESP_OBJS := $(ESP_SRCS:%.c=$(BUILD)/%.o)
ANALYZE_SRCS += $(ESP_SRCS)

# test_esp includes esp.c itself to reach the explicit-IV seal used by the
# published known-answer vectors, so it links replay.o but not esp.o.
TEST_BINS += $(BUILD)/tests/unit/test_esp $(BUILD)/tests/unit/test_replay
TESTS     += $(BUILD)/tests/unit/test_replay $(BUILD)/tests/unit/test_esp
$(BUILD)/tests/unit/test_esp: $(BUILD)/tests/unit/test_esp.o \
    $(BUILD)/overlay/uesp/replay.o $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_CRYPTO) $(LIBS_CMOCKA))
$(BUILD)/tests/unit/test_replay: $(BUILD)/tests/unit/test_replay.o \
    $(BUILD)/overlay/uesp/replay.o
	$(call link,$@,$^,$(LIBS_CMOCKA))

# The inbound path under libFuzzer (make fuzz; run briefly by make test).
FUZZ_TARGETS += esp_in
FUZZ_esp_in_SRCS := tests/fuzz/fuzz_esp_in.c $(ESP_SRCS) $(LIB_SRCS)
FUZZ_esp_in_LIBS := $(LIBS_CRYPTO)

# make bench: uesp against tinc, nebula and strongSwan libipsec.
BENCHES += tests/bench/uesp_peers.sh

# make bench: seal+open per second against openssl speed (esp_bench.sh).
BENCHES += $(BUILD)/tests/bench/esp_bench
$(BUILD)/tests/bench/esp_bench: $(BUILD)/tests/bench/esp_bench.o $(ESP_OBJS) \
    $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_CRYPTO))

# tests/lab/ — the kernel lab: scenarios that run inside a VM booting
# Debian's own kernel (tests/lab/run, tests/lab/README.md).  `make
# test-lab` runs every scenario in tests/lab/scenarios/; `make test` runs
# them too, each through the one-line wrapper of the same name in
# tests/lab/ (so the test is named lab/SCENARIO).
LAB_SCENARIOS := $(sort $(wildcard tests/lab/scenarios/*.sh))
LAB_TESTS     := $(LAB_SCENARIOS:tests/lab/scenarios/%=tests/lab/%)
LAB_BINS      := $(BUILD)/tests/lab/udp_encap $(BUILD)/overlay/uesp/meshwan-uesp \
	$(BUILD)/controller/meshwan-controller $(BUILD)/edge-agent/meshwan-edge

# Holds the UDP_ENCAP_ESPINUDP socket for scenarios that set XFRM up by hand.
$(BUILD)/tests/lab/udp_encap: $(BUILD)/tests/lab/udp_encap.o
	$(call link,$@,$^,)
ANALYZE_SRCS += tests/lab/udp_encap.c

TEST_BINS += $(LAB_BINS)
TESTS     += $(LAB_TESTS)

# The four whole-system mesh scenarios alone (also in `make test`).
LAB_MESH_TESTS := tests/lab/xfrm_mesh_gre.sh tests/lab/xfrm_mesh_vxlan.sh \
	tests/lab/xfrm_mesh_mixed.sh tests/lab/xfrm_mesh_switch.sh
.PHONY: test-lab-mesh
test-lab-mesh: deps-checked build-all $(TEST_BINS)
	@BUILD=$(BUILD) sh tests/run $(LAB_MESH_TESTS)

# overlay/ — the backend interface, the registry, and the backends.
# Each piece owns its own fragment.
-include overlay/overlay.mk
-include overlay/uesp/esp.mk
-include overlay/uesp/uesp.mk
-include overlay/xfrm/xfrm.mk

# overlay/ — the backend interface, the registry, and the backends.
# Each piece owns its own fragment.  xfrm.mk comes before uesp.mk: the
# link rules there expand OVERLAY_OBJS, which xfrm.mk extends.
-include overlay/overlay.mk
-include overlay/uesp/esp.mk
-include overlay/xfrm/xfrm.mk
-include overlay/uesp/uesp.mk
-include overlay/xfrm/xfrm_tests.mk

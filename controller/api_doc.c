/*
 * api_doc.c — links controller/web/openapi.json into the binary, so the
 * document served at /api/v1/openapi.json is always the one of this build
 * and the daemon needs no data folder to serve it.  api_openapi_json_len
 * is the document's size in bytes (a NUL follows the document).
 */
__asm__(
	"	.section .rodata\n"
	"	.global api_openapi_json\n"
	"	.type api_openapi_json, @object\n"
	"api_openapi_json:\n"
	"	.incbin \"controller/web/openapi.json\"\n"
	"api_openapi_json_end:\n"
	"	.byte 0\n"
	"	.balign 8\n"
	"	.global api_openapi_json_len\n"
	"	.type api_openapi_json_len, @object\n"
	"api_openapi_json_len:\n"
	"	.quad api_openapi_json_end - api_openapi_json\n"
	"	.previous\n");

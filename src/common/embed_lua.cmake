# Writes OUT: one C string per Lua script NAMES (in DIR), each preceded by
# DIR/common.lua, so the scripts stay readable .lua files.
file(READ ${DIR}/common.lua common)
set(text "/* Generated from src/common/lua by embed_lua.cmake: do not edit. */\n")
string(REPLACE "," ";" NAMES "${NAMES}")
foreach(name ${NAMES})
    file(READ ${DIR}/${name}.lua body)
    set(src "${common}${body}")
    string(REPLACE "\\" "\\\\" src "${src}")
    string(REPLACE "\"" "\\\"" src "${src}")
    string(REPLACE "\n" "\\n\"\n    \"" src "${src}")
    string(APPEND text "const char queue_lua_${name}[] =\n    \"${src}\";\n")
endforeach()
file(WRITE ${OUT} "${text}")

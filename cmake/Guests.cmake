# Guest programs (tests/guests/*.S) are assembled with GNU as and linked with
# GNU ld for x86-64; a guest whose source says "VMXSIM-FORMAT: elf32" is then
# converted with objcopy -O elf32-i386, the way Multiboot test kernels are.
find_program(GNU_AS as REQUIRED)
find_program(GNU_LD ld REQUIRED)
find_program(GNU_OBJCOPY objcopy REQUIRED)

set(GUEST_OUT ${CMAKE_BINARY_DIR}/guests)
file(MAKE_DIRECTORY ${GUEST_OUT})

# vmxsim_add_guest(NAME SRC [LDSCRIPT file] [FORMAT elf64|elf32|flat])
function(vmxsim_add_guest name src)
  cmake_parse_arguments(G "" "LDSCRIPT;FORMAT" "" ${ARGN})
  if(NOT G_LDSCRIPT)
    set(G_LDSCRIPT ${CMAKE_SOURCE_DIR}/tests/guests/guest.ld)
  endif()
  if(NOT G_FORMAT)
    set(G_FORMAT elf64)
  endif()
  set(obj ${GUEST_OUT}/${name}.o)
  set(elf ${GUEST_OUT}/${name}.elf64)
  set(out ${GUEST_OUT}/${name}.${G_FORMAT})
  add_custom_command(OUTPUT ${obj}
    COMMAND ${GNU_AS} --64 -I ${CMAKE_SOURCE_DIR}/tests/guests -o ${obj} ${src}
    DEPENDS ${src} ${CMAKE_SOURCE_DIR}/tests/guests/guest.inc
    COMMENT "as ${name}")
  add_custom_command(OUTPUT ${elf}
    COMMAND ${GNU_LD} -m elf_x86_64 -nostdlib --no-warn-rwx-segments -z max-page-size=0x1000 -T ${G_LDSCRIPT} -o ${elf} ${obj}
    DEPENDS ${obj} ${G_LDSCRIPT}
    COMMENT "ld ${name}")
  if(G_FORMAT STREQUAL "elf32")
    add_custom_command(OUTPUT ${out} COMMAND ${GNU_OBJCOPY} -O elf32-i386 ${elf} ${out} DEPENDS ${elf})
  elseif(G_FORMAT STREQUAL "flat")
    add_custom_command(OUTPUT ${out} COMMAND ${GNU_OBJCOPY} -O binary ${elf} ${out} DEPENDS ${elf})
  else()
    set(out ${elf})
  endif()
  add_custom_target(guest_${name} ALL DEPENDS ${out})
  set(GUEST_${name}_PATH ${out} PARENT_SCOPE)
endfunction()

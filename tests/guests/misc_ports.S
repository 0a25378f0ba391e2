# The "Shutdown" port (README "Devices"; Bochs/QEMU convention): the byte
# stream "Shutdown" written to port 8900h stops the machine with exit
# status 0 and nothing on stderr but what the guest caused. A partial
# string broken by another byte does not stop it; after such a break a
# repeated 'S' still starts a match ("SShutdown" ends in "Shutdown").
# If the port did not stop the run, the guest prints FAIL and takes the
# debug exit (status 33), so status 0 can only come from the port.
# Width variants of the debug-exit port: misc_ports_out16.S, misc_ports_out32.S.
# FORMAT: elf64
# EXPECT-OUT: writing a partial string
# EXPECT-OUT: partial ignored
# EXPECT-OUT: writing SShutdown
# EXPECT-EXIT: 0
.include "guest.inc"
    .text
    .globl _start
_start:
    PUTS m_partial
    lea s_partial(%rip), %rsi
    call shutdown_puts
    PUTS m_ignored
    PUTS m_full
    lea s_full(%rip), %rsi
    call shutdown_puts
    PUTS m_fail
    EXIT 0x10

shutdown_puts:                      # %rsi = string, byte by byte to port 8900h
    mov $0x8900, %dx
1:  movb (%rsi), %al
    test %al, %al
    jz 2f
    out %al, %dx
    inc %rsi
    jmp 1b
2:  ret
    GUEST_LIB64
    .section .rodata
s_partial: .asciz "ShutdowX"
s_full: .asciz "SShutdown"
m_partial: .asciz "writing a partial string\n"
m_ignored: .asciz "partial ignored\n"
m_full: .asciz "writing SShutdown\n"
m_fail: .asciz "FAIL: still running after Shutdown\n"

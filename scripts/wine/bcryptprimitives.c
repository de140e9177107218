/*
 * A stand-in for Windows' bcryptprimitives.dll under Wine 8.0, which lacks it: the Rust
 * standard library (1.78 and later) takes its random bytes (HashMap keys, and getrandom)
 * from ProcessPrng there. Built and installed into the Wine prefix by scripts/wine-run.sh;
 * never shipped. Real Windows (10 and later) has the DLL.
 */
#include <windows.h>
#include <ntsecapi.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!RtlGenRandom(data, n))
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}

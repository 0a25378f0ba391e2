/*
 * EPT internals shared by ept.c (the EPT walk, EPTP checks) and nested.c
 * (the 2-D walk). Not for use outside src/paging.
 *
 * SDM Vol. 3C §29.3. Levels are numbered as for ordinary paging:
 * 1 = EPT PTE, 2 = EPT PDE, 3 = EPT PDPTE, 4 = EPT PML4E, 5 = EPT PML5E.
 */
#ifndef VMXSIM_EPT_PRIV_H
#define VMXSIM_EPT_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "paging/paging.h"

#define EPT_MAX_LEVELS 5
#define EPT_ENTRY_SIZE 8  /* bytes per EPT paging-structure entry */
#define EPT_INDEX_BITS 9  /* 512 entries per EPT paging structure */
#define EPT_GPA_4LEVEL 48 /* 4-level EPT translates guest-physical bits 47:0 */
#define EPT_MAX_PHYADDR 52 /* architectural maximum of MAXPHYADDR */
#define EPT_MIN_PHYADDR 32 /* smallest MAXPHYADDR the walker accepts */

/* Reserved bits of EPT paging-structure entries — SDM Vol. 3C §29.3.2, Tables 29-1 to 29-7 */
#define EPT_NONLEAF_RSVD_7_3 GENMASK64(7, 3)   /* PML5E, PML4E, non-leaf PDPTE/PDE */
#define EPT_1G_RSVD_29_12 GENMASK64(29, 12)    /* PDPTE that maps a 1-GByte page */
#define EPT_2M_RSVD_20_12 GENMASK64(20, 12)    /* PDE that maps a 2-MByte page */

/* SDM Vol. 3C §29.3.5: A/D flags need EPTP bit 6 and IA32_VMX_EPT_VPID_CAP bit 21. */
bool ept_ad_enabled(const struct ept_state *ept);

/* SDM Vol. 3C §29.3.2: MAXPHYADDR, kept within what the EPT formats can express. */
unsigned ept_maxphyaddr(const struct ept_state *ept);

#endif

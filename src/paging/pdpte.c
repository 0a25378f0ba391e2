/*
 * PAE page-directory-pointer-table entries. PAE paging does not read the
 * PDPTEs from memory on each walk: MOV to CR0/CR3/CR4 (and VM entry) load
 * four PDPTE registers, checking their reserved bits then (SDM §4.4.1).
 */
#include <string.h>

#include "paging/paging_priv.h"

/* SDM Vol. 3A §4.4.1, Table 4-8: bits 2:1, 8:5 and 63:M of a present PDPTE. */
uint64_t pg_pae_pdpte_rsvd(const struct paging_state *st)
{
    return PAE_PDPTE_RSVD_2_1 | PAE_PDPTE_RSVD_8_5 | GENMASK64(63, pg_maxphyaddr(st));
}

/*
 * SDM Vol. 3A §4.4.1: the PDPT is the 32-byte aligned table at CR3[31:5].
 * A present PDPTE with a reserved bit set makes the load fail and the
 * registers keep their old values (the MOV to CR then #GPs). A PDPT read
 * the accessor cannot satisfy (unbacked, or a nested EPT fault whose
 * details stay in mem->ctx) also fails the load without touching pdpte[].
 */
bool paging_load_pdptes(const struct paging_state *st, const struct paging_mem *mem,
                        uint64_t cr3, uint64_t pdpte[4])
{
    uint64_t base = cr3 & PAE_CR3_PDPT;
    uint64_t rsvd = pg_pae_pdpte_rsvd(st);
    uint64_t loaded[PAE_PDPTE_COUNT];

    for (unsigned i = 0; i < PAE_PDPTE_COUNT; i++) {
        if (mem->read(mem->ctx, base + 8 * i, 8, &loaded[i]) != PAGING_MEM_OK)
            return false;
        if ((loaded[i] & PTE_P) && (loaded[i] & rsvd))
            return false;
    }
    memcpy(pdpte, loaded, sizeof loaded);
    return true;
}

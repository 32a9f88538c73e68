"""Iterative DPO campaigns: rounds of generate -> rate -> curate -> train -> evaluate, each round's model writing the
next round's candidates (control: create, cancel, resume; flow: how a round moves on; report: did it help)."""

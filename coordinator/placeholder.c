/* placeholder */
int lmr_coordinator_placeholder;

/* placeholder */
int lmr_reducer_placeholder;

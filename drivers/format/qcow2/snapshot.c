/*
 * qcow2 internal snapshots as the front-end sees them: their names, so that
 * each can be mounted read-only (snapshot=NAME). Loading and choosing a
 * snapshot is qcow2.c's job.
 */
#include "qcow2.h"

#include <stdlib.h>
#include <string.h>

int qcow2_snapshot_names(struct bd_node *n, char ***out)
{
    struct qcow2_state *s = n->state;
    char **names = calloc(s->nb_snapshots + 1, sizeof(*names));
    if (!names)
        return -ENOMEM;
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        const struct qcow2_snapshot *sn = &s->snapshots[i];
        names[i] = strdup(sn->name && *sn->name ? sn->name : sn->id);
        if (!names[i]) {
            for (uint32_t j = 0; j < i; j++)
                free(names[j]);
            free(names);
            return -ENOMEM;
        }
    }
    *out = names;
    return (int)s->nb_snapshots;
}

/*
 * uesp_seq.c — the sequence reservation file: a locked file of fixed-size
 * records, one per outbound key, each the key's digest and the highest
 * sequence number reserved for it, written in place and fsynced by one
 * thread.  See uesp_seq.h for why, README.md for the format.
 */
#include "overlay/uesp/uesp_seq.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "lib/log.h"
#include "lib/util.h"

#define SEQ_MAGIC	"MESHWAN-UESP-SEQ"	/* 16 bytes, no NUL */
#define SEQ_VERSION	1
#define SEQ_HDR_LEN	32
#define SEQ_REC_LEN	32	/* digest 16 | mark 8 | check 8 */
#define SEQ_DIGEST_LEN	16
#define SEQ_KEY_LABEL	"meshwan uesp seq key v1"
#define SEQ_REC_LABEL	"meshwan uesp seq record v1"

struct seq_slot {
	uint8_t digest[SEQ_DIGEST_LEN];
	uint64_t mark;		/* on disk */
	uint64_t order;		/* last use, for recycling the oldest */
	struct uesp_seq_res *live;
	bool damaged;		/* check failed: the mark is unknown */
};

struct uesp_seq {
	char path[PATH_MAX];
	int fd;
	int evfd;
	uint64_t step;		/* numbers per mark */
	pthread_t thread;
	pthread_mutex_t lock;	/* everything below, and the file */
	bool stop;
	struct seq_slot *slots;
	size_t nslots, capslots;
	uint64_t order;
	struct uesp_seq_res **live;
	size_t nlive, caplive;
	struct uesp_seq_stats st;
	uint64_t last_err_ms;
};

static void
seq_put64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t
seq_get64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* SHA-256 over label and the parts, truncated to len bytes: 0 or -1. */
static int
seq_sha(const char *label, const void *a, size_t alen, const void *b,
    size_t blen, const void *c, size_t clen, uint8_t *out, size_t len)
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_MD_CTX *ctx;
	int ok;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, label, strlen(label) + 1) == 1 &&
	    EVP_DigestUpdate(ctx, a, alen) == 1 &&
	    EVP_DigestUpdate(ctx, b, blen) == 1 &&
	    EVP_DigestUpdate(ctx, c, clen) == 1 &&
	    EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen >= len;
	EVP_MD_CTX_free(ctx);
	if (ok)
		memcpy(out, md, len);
	util_wipe(md, sizeof(md));
	return ok ? 0 : -1;
}

static int
seq_key_digest(const struct overlay_sa_params *p, uint8_t *d)
{
	uint8_t cipher = (uint8_t)p->cipher;

	return seq_sha(SEQ_KEY_LABEL, &cipher, 1, p->key,
	    overlay_cipher_keylen(p->cipher), p->salt, OVERLAY_SALT_LEN, d,
	    SEQ_DIGEST_LEN);
}

static void
seq_record(const uint8_t *digest, uint64_t mark, uint8_t *rec)
{
	memcpy(rec, digest, SEQ_DIGEST_LEN);
	seq_put64(rec + SEQ_DIGEST_LEN, mark);
	if (seq_sha(SEQ_REC_LABEL, rec, SEQ_DIGEST_LEN + 8, "", 0, "", 0,
	    rec + SEQ_DIGEST_LEN + 8, 8) < 0)
		memset(rec + SEQ_DIGEST_LEN + 8, 0, 8); /* reads as damaged */
}

static void
seq_warn(struct uesp_seq *s, const char *what, int err)
{
	uint64_t now = util_mono_ms();

	/* Once per 10 s: a failing disk must not flood the log. */
	if (s->last_err_ms != 0 && now - s->last_err_ms < 10000)
		return;
	s->last_err_ms = now;
	log_warnx("uesp: %s: %s: %s", s->path, what, strerror(err));
}

/* Write one record (not yet synced): 0 or -errno. */
static int
seq_write(struct uesp_seq *s, size_t slot, uint64_t mark)
{
	uint8_t rec[SEQ_REC_LEN];
	ssize_t r;

	seq_record(s->slots[slot].digest, mark, rec);
	r = pwrite(s->fd, rec, sizeof(rec), SEQ_HDR_LEN + (off_t)slot *
	    SEQ_REC_LEN);
	if (r == (ssize_t)sizeof(rec))
		return 0;
	return r < 0 ? -errno : -EIO;
}

static int
seq_sync(struct uesp_seq *s)
{
	uint64_t t0 = util_mono_ns(), dt;

	if (fdatasync(s->fd) < 0)
		return -errno;
	dt = util_mono_ns() - t0;
	s->st.fsyncs++;
	s->st.fsync_ns_total += dt;
	if (dt > s->st.fsync_ns_max)
		s->st.fsync_ns_max = dt;
	return 0;
}

/* Writer thread: move every asking reservation one step ahead. */
static void *
seq_main(void *arg)
{
	struct uesp_seq *s = arg;
	struct uesp_seq_res *r;
	uint64_t v, mark;
	size_t i;
	int rc;

	for (;;) {
		if (read(s->evfd, &v, sizeof(v)) < 0 && errno != EINTR &&
		    errno != EAGAIN) {
			log_warn("uesp: %s: eventfd", s->path);
			return NULL;
		}
		pthread_mutex_lock(&s->lock);
		if (s->stop) {
			pthread_mutex_unlock(&s->lock);
			return NULL;
		}
		rc = 0;
		for (i = 0; i < s->nlive && rc == 0; i++) {
			r = s->live[i];
			if (!atomic_load(&r->want))
				continue;
			mark = s->slots[r->slot].mark;
			mark = r->max - mark > s->step ?
			    mark + s->step : r->max;
			rc = seq_write(s, r->slot, mark);
			s->slots[r->slot].mark = mark;
		}
		if (rc == 0)
			rc = seq_sync(s);
		if (rc < 0) {
			/* The old limits stand (on disk or not, the new marks
			 * are only higher); retry after a pause. */
			seq_warn(s, "cannot reserve sequence numbers", -rc);
			pthread_mutex_unlock(&s->lock);
			sleep(1);
			pthread_mutex_lock(&s->lock);
			for (i = 0; i < s->nlive; i++)
				atomic_store(&s->live[i]->want, false);
			pthread_mutex_unlock(&s->lock);
			continue;
		}
		for (i = 0; i < s->nlive; i++) {
			r = s->live[i];
			if (!atomic_load(&r->want))
				continue;
			atomic_store_explicit(&r->limit, s->slots[r->slot].mark,
			    memory_order_release);
			atomic_store(&r->want, false);
		}
		pthread_mutex_unlock(&s->lock);
	}
}

/* Read the header and the records; a new file gets its header. */
static int
seq_load(struct uesp_seq *s)
{
	uint8_t hdr[SEQ_HDR_LEN], rec[SEQ_REC_LEN], want[SEQ_REC_LEN];
	static const uint8_t zero[SEQ_REC_LEN];
	struct seq_slot *sl;
	struct stat sb;
	size_t n, i;

	if (fstat(s->fd, &sb) < 0)
		return -errno;
	if (sb.st_size == 0) {
		memset(hdr, 0, sizeof(hdr));
		memcpy(hdr, SEQ_MAGIC, 16);
		hdr[19] = SEQ_VERSION;
		hdr[23] = SEQ_REC_LEN;
		if (pwrite(s->fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr))
			return -EIO;
		return seq_sync(s);
	}
	if (pread(s->fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
	    memcmp(hdr, SEQ_MAGIC, 16) != 0 || hdr[19] != SEQ_VERSION ||
	    hdr[23] != SEQ_REC_LEN) {
		log_warnx("uesp: %s: not a sequence reservation file (version "
		    "%u)", s->path, SEQ_VERSION);
		return -EINVAL;
	}
	/* A partial last record is a torn append of a slot never used. */
	n = ((size_t)sb.st_size - SEQ_HDR_LEN) / SEQ_REC_LEN;
	if (n > UESP_SEQ_SLOTS_MAX)
		n = UESP_SEQ_SLOTS_MAX;
	if ((s->slots = util_grow(NULL, &s->capslots, n, sizeof(*sl), 64)) ==
	    NULL)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if (pread(s->fd, rec, sizeof(rec), SEQ_HDR_LEN + (off_t)i *
		    SEQ_REC_LEN) != (ssize_t)sizeof(rec))
			return -EIO;
		sl = &s->slots[s->nslots++];
		memset(sl, 0, sizeof(*sl));
		memcpy(sl->digest, rec, SEQ_DIGEST_LEN);
		sl->mark = seq_get64(rec + SEQ_DIGEST_LEN);
		sl->order = ++s->order;
		if (memcmp(rec, zero, sizeof(rec)) == 0)
			continue;	/* never written: free */
		seq_record(rec, sl->mark, want);
		if (memcmp(want, rec, sizeof(rec)) != 0) {
			/* A torn update: the digest (unchanged by updates)
			 * still names the key, but its mark is unknown. */
			sl->damaged = true;
			log_warnx("uesp: %s: record %zu damaged: its key will be "
			    "refused", s->path, i);
		}
	}
	return 0;
}

struct uesp_seq *
uesp_seq_open(const char *path)
{
	return uesp_seq_open_step(path, UESP_SEQ_STEP);
}

struct uesp_seq *
uesp_seq_open_step(const char *path, uint64_t step)
{
	struct uesp_seq *s;
	char dir[PATH_MAX];
	int dfd, rc;
	bool created;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->fd = s->evfd = -1;
	s->step = step > 1 ? step : UESP_SEQ_STEP;
	if (util_strcpy(s->path, sizeof(s->path), path) < 0) {
		log_warnx("uesp: sequence file name too long");
		goto free_s;
	}
	created = access(path, F_OK) != 0;
	if ((s->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		log_warn("uesp: %s", path);
		goto free_s;
	}
	if (flock(s->fd, LOCK_EX | LOCK_NB) < 0) {
		log_warn("uesp: %s: in use by another process (one instance "
		    "per sequence file)", path);
		goto close_fd;
	}
	if ((rc = seq_load(s)) < 0) {
		log_warnx("uesp: %s: cannot read: %s", path, strerror(-rc));
		goto close_fd;
	}
	if (created) {
		/* The new name must survive a crash as well as its data. */
		util_strcpy(dir, sizeof(dir), path);
		if ((dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY |
		    O_CLOEXEC)) >= 0) {
			(void)fsync(dfd);
			close(dfd);
		}
	}
	if ((s->evfd = eventfd(0, EFD_CLOEXEC)) < 0) {
		log_warn("uesp: eventfd");
		goto close_fd;
	}
	pthread_mutex_init(&s->lock, NULL);
	if ((rc = pthread_create(&s->thread, NULL, seq_main, s)) != 0) {
		log_warnx("uesp: sequence thread: %s", strerror(rc));
		pthread_mutex_destroy(&s->lock);
		goto close_ev;
	}
	log_info("uesp: sequence reservations in %s (%zu keys)", path,
	    s->nslots);
	return s;
close_ev:
	close(s->evfd);
close_fd:
	close(s->fd);
free_s:
	free(s->slots);
	free(s);
	return NULL;
}

void
uesp_seq_close(struct uesp_seq *s)
{
	uint64_t one = 1;

	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_mutex_unlock(&s->lock);
	if (write(s->evfd, &one, sizeof(one)) < 0)
		log_warn("uesp: sequence thread wake");
	pthread_join(s->thread, NULL);
	pthread_mutex_destroy(&s->lock);
	if (s->st.fsyncs > 0)
		log_info("uesp: %s: %llu fsyncs, %llu us on average, %llu us "
		    "at most", s->path, (unsigned long long)s->st.fsyncs,
		    (unsigned long long)(s->st.fsync_ns_total / s->st.fsyncs /
		    1000), (unsigned long long)(s->st.fsync_ns_max / 1000));
	close(s->evfd);
	close(s->fd);
	free(s->live);
	free(s->slots);
	free(s);
}

/* The slot for a digest: found, a new one, or the oldest unused one. */
static ssize_t
seq_slot(struct uesp_seq *s, const uint8_t *d, bool *found)
{
	struct seq_slot *sl;
	size_t i, best = SIZE_MAX;

	*found = false;
	for (i = 0; i < s->nslots; i++) {
		if (memcmp(s->slots[i].digest, d, SEQ_DIGEST_LEN) == 0) {
			*found = true;
			return (ssize_t)i;
		}
	}
	if (s->nslots < UESP_SEQ_SLOTS_MAX) {
		sl = util_grow(s->slots, &s->capslots, s->nslots + 1,
		    sizeof(*sl), 64);
		if (sl == NULL)
			return -ENOMEM;
		s->slots = sl;
		memset(&s->slots[s->nslots], 0, sizeof(*sl));
		return (ssize_t)s->nslots++;
	}
	/* Full: forget the key used longest ago (README.md, "Limits"). */
	for (i = 0; i < s->nslots; i++)
		if (s->slots[i].live == NULL &&
		    (best == SIZE_MAX || s->slots[i].order < s->slots[best].order))
			best = i;
	if (best == SIZE_MAX)
		return -ENOSPC;
	log_warnx("uesp: %s: %u keys remembered; forgetting the oldest",
	    s->path, UESP_SEQ_SLOTS_MAX);
	memset(&s->slots[best], 0, sizeof(s->slots[best]));
	return (ssize_t)best;
}

static int
seq_acquire(struct uesp_seq *s, const struct overlay_sa_params *p,
    struct uesp_seq_res **res, uint64_t *start, bool sync)
{
	uint8_t d[SEQ_DIGEST_LEN];
	struct uesp_seq_res *r, **lv;
	struct seq_slot *sl;
	uint64_t max = p->esn ? UINT64_MAX : UINT32_MAX, first, mark;
	ssize_t idx;
	bool found;
	int rc;

	if (seq_key_digest(p, d) < 0)
		return -ENOMEM;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&s->lock);
	lv = util_grow(s->live, &s->caplive, s->nlive + 1,
	    sizeof(struct uesp_seq_res *), 16);
	if (lv == NULL) {
		rc = -ENOMEM;
		goto unlock;
	}
	s->live = lv;
	if ((idx = seq_slot(s, d, &found)) < 0) {
		rc = (int)idx;
		goto unlock;
	}
	sl = &s->slots[idx];
	if (found && sl->live != NULL) {
		rc = -EEXIST;
		goto unlock;
	}
	if (found && sl->damaged) {
		log_warnx("uesp: tunnel %llu SA out %u: its record in %s is "
		    "damaged, so how far the key went is unknown: rekey",
		    (unsigned long long)p->tunnel_id, p->spi, s->path);
		rc = -EIO;
		goto unlock;
	}
	first = found && sl->mark > p->seq_start ? sl->mark : p->seq_start;
	if (first >= max) {
		log_warnx("uesp: tunnel %llu SA out %u: the key's sequence "
		    "space is used up (%s): rekey",
		    (unsigned long long)p->tunnel_id, p->spi, s->path);
		rc = -EOVERFLOW;
		goto unlock;
	}
	memcpy(sl->digest, d, sizeof(d));
	mark = max - first > s->step ? first + s->step : max;
	if ((rc = seq_write(s, (size_t)idx, mark)) < 0 ||
	    (sync && (rc = seq_sync(s)) < 0)) {
		seq_warn(s, "cannot reserve sequence numbers", -rc);
		rc = -EIO;
		goto unlock;
	}
	sl->mark = mark;
	sl->order = ++s->order;
	sl->live = r;
	atomic_init(&r->limit, mark);
	atomic_init(&r->want, false);
	r->max = max;
	r->step = s->step;
	r->slot = (uint32_t)idx;
	r->evfd = s->evfd;
	r->s = s;
	s->live[s->nlive++] = r;
	if (found)
		log_info("uesp: tunnel %llu SA out %u: key seen before, starts "
		    "after %llu", (unsigned long long)p->tunnel_id, p->spi,
		    (unsigned long long)first);
	pthread_mutex_unlock(&s->lock);
	*res = r;
	*start = first;
	return 0;
unlock:
	pthread_mutex_unlock(&s->lock);
	free(r);
	return rc;
}

int
uesp_seq_acquire(struct uesp_seq *s, const struct overlay_sa_params *p,
    struct uesp_seq_res **res, uint64_t *start)
{
	return seq_acquire(s, p, res, start, true);
}

int
uesp_seq_acquire_nosync(struct uesp_seq *s, const struct overlay_sa_params *p,
    struct uesp_seq_res **res, uint64_t *start)
{
	return seq_acquire(s, p, res, start, false);
}

int
uesp_seq_sync(struct uesp_seq *s)
{
	int rc;

	pthread_mutex_lock(&s->lock);
	if ((rc = seq_sync(s)) < 0) {
		seq_warn(s, "cannot reserve sequence numbers", -rc);
		rc = -EIO;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

void
uesp_seq_release(struct uesp_seq_res *r)
{
	struct uesp_seq *s;
	size_t i;

	if (r == NULL)
		return;
	s = r->s;
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->nlive; i++) {
		if (s->live[i] == r) {
			s->live[i] = s->live[--s->nlive];
			break;
		}
	}
	s->slots[r->slot].live = NULL;
	s->slots[r->slot].order = ++s->order;
	pthread_mutex_unlock(&s->lock);
	free(r);
}

void
uesp_seq_ask(struct uesp_seq_res *r)
{
	uint64_t one = 1;

	if (!atomic_exchange(&r->want, true) &&
	    write(r->evfd, &one, sizeof(one)) < 0)
		atomic_store(&r->want, false);
}

void
uesp_seq_stats(struct uesp_seq *s, struct uesp_seq_stats *out)
{
	pthread_mutex_lock(&s->lock);
	*out = s->st;
	out->slots = (unsigned)s->nslots;
	pthread_mutex_unlock(&s->lock);
}

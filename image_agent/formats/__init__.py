"""What an image's bytes really are, and turning them into another format.

``inspect`` judges a download while its bytes stream (oslo.utils' format
inspector, fed by the one copy that also hashes and writes them);
``convert`` runs ``qemu-img`` under process limits for the hypervisors
that need another format than the one Glance holds.
"""

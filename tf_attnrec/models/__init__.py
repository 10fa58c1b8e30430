"""tf_attnrec.models"""
